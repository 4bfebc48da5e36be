"""The lifecycle options, one scenario each (the stateful suite checks them on random runs)."""

from __future__ import annotations

from typing import Any

from test_alerts_fixtures import ORDERS_ROWS, RUN, SOURCE_KEY, T0, Runner, finding, make_config

from driftguard.alerts import new_silence
from driftguard.model import FindingStatus, Matcher, NoticeKind

A, OK, ERR = FindingStatus.ANOMALY, FindingStatus.OK, FindingStatus.ERROR


def runner(channel: dict[str, Any] | None = None, **route: Any) -> Runner:
    channels = [{"name": "chat", "type": "console", **(channel or {})}]
    # one failed run puts the source in ERROR: the source is down from the first run on
    config = make_config(
        channels=channels, route={"receivers": ["chat"], **route}, alerting={"error_after_failures": 1}
    )
    return Runner(config)


def silence_orders(r: Runner, runs: int = 20) -> None:
    r.silences.append(
        new_silence(
            [Matcher(label="table", value="orders")],
            created_by="ana",
            comment="backfill",
            now=T0 + RUN,
            duration=runs * RUN,
        )
    )


def kinds(r: Runner) -> list[NoticeKind]:
    return [a.kind for n in r.decisions[-1].notifications for a in n.alerts]


def test_a_resolved_notice_goes_out_while_silenced_only_when_the_channel_asks() -> None:
    for asked, expected in ((False, []), (True, [NoticeKind.RESOLVED])):
        r = runner({"resolved_when_silenced": asked})
        r.run([finding(A, at=T0)], T0)
        assert kinds(r) == [NoticeKind.FIRING]
        silence_orders(r)
        r.run([finding(A, at=T0 + RUN)], T0 + RUN)
        assert kinds(r) == []
        r.run([finding(OK, at=T0 + 2 * RUN)], T0 + 2 * RUN)
        assert kinds(r) == expected


def test_a_silence_ends_when_the_alert_it_muted_resolves_on_a_route_that_asks() -> None:
    for asked in (False, True):
        r = runner(end_silences_on_resolve=asked)
        silence_orders(r)
        r.run([finding(A, at=T0 + RUN)], T0 + RUN)
        resolved_at = T0 + 2 * RUN
        decision = r.run([finding(OK, at=resolved_at)], resolved_at)
        assert [s.ends_at for s in decision.expired_silences] == ([resolved_at] if asked else [])
        assert r.silences[0].active(resolved_at + RUN) is not asked
        # the next incident of the same table is told again when the silence has ended
        r.run([finding(A, at=resolved_at + RUN)], resolved_at + RUN)
        assert kinds(r) == ([NoticeKind.FIRING] if asked else [])


def test_a_source_that_is_down_inhibits_its_tables_alerts_until_it_is_back() -> None:
    r = runner(inhibit_when_source_down=True)
    down = finding(ERR, key=SOURCE_KEY, at=T0, reason="connection refused")
    decision = r.run([down, finding(A, key=ORDERS_ROWS, at=T0)], T0)
    assert kinds(r) == [NoticeKind.ERROR]  # the source's own alert, not the table's
    (table,) = [t for t in decision.transitions if t.key == ORDERS_ROWS]
    assert table.silenced_by == ["inhibited: source orders_db is down (connection refused)"]
    later = T0 + RUN
    r.run([finding(OK, key=SOURCE_KEY, at=later), finding(A, key=ORDERS_ROWS, at=later)], later)
    assert sorted(kinds(r)) == sorted([NoticeKind.FIRING, NoticeKind.RESOLVED])


def test_without_the_option_a_down_source_does_not_mute_its_tables() -> None:
    r = runner()
    r.run([finding(ERR, key=SOURCE_KEY, at=T0), finding(A, key=ORDERS_ROWS, at=T0)], T0)
    assert sorted(kinds(r)) == sorted([NoticeKind.ERROR, NoticeKind.FIRING])
