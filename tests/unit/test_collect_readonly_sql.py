"""The custom-SQL gate: exactly one read-only statement, whatever hides in literals and comments."""

from __future__ import annotations

import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from driftguard.collect.readonly_sql import FORBIDDEN_WORDS, read_only_statement
from driftguard.collect.types import Dialect
from driftguard.errors import CheckDefinitionError

DIALECTS: list[Dialect] = ["postgresql", "mysql", "sqlite"]
WHERE = "source s, sql check c"


def accepted(sql: str, dialect: Dialect = "postgresql") -> str:
    return read_only_statement(sql, dialect, where=WHERE)


def refused(sql: str, dialect: Dialect = "postgresql") -> str:
    with pytest.raises(CheckDefinitionError) as info:
        read_only_statement(sql, dialect, where=WHERE)
    message = str(info.value)
    assert message.startswith(WHERE + ": ")
    return message


@pytest.mark.parametrize("dialect", DIALECTS)
@pytest.mark.parametrize(
    "sql",
    [
        "select 1 as status",
        "SELECT 1;",
        "  with x as (select 1) select * from x ;  -- done",
        "values (1)",
        "(select 1) union (select 2)",
        "select 'a; drop table t' as s",
        "select 1 /* ; delete from t */",
        "select 'it''s; update' as s",
        'select "update" from t',
        "select replace(name, 'a', 'b') from t",
    ],
)
def test_single_reads_are_accepted(sql: str, dialect: Dialect) -> None:
    assert accepted(sql, dialect).lower().startswith(sql.strip().lower()[:6])


def test_the_statement_is_returned_without_trailing_semicolon_or_comment() -> None:
    assert accepted("select 1 ;  -- trailing\n") == "select 1"


@pytest.mark.parametrize("dialect", DIALECTS)
def test_two_statements_are_refused_with_where_the_second_starts(dialect: Dialect) -> None:
    message = refused("select 1;\n drop table t", dialect)
    assert "2 statements" in message and "line 2" in message and "'drop'" in message


@pytest.mark.parametrize(
    ("sql", "words"),
    [
        ("update t set a = 1", "starts with 'update'"),
        ("delete from t", "starts with 'delete'"),
        ("with d as (delete from t returning *) select * from d", "uses DELETE"),
        ("select * into new_table from t", "uses INTO"),
        ("select * from t for update", "uses UPDATE"),
        ("", "empty"),
        ("  ; -- nothing", "empty"),
        ("select 'open", "string literal is never closed"),
        ("select 1 /* open", "comment is never closed"),
    ],
)
def test_writes_and_malformed_sql_are_refused(sql: str, words: str) -> None:
    assert words in refused(sql)


def test_postgres_dollar_quotes_and_nested_comments_hide_their_content() -> None:
    assert accepted("select $$; drop table t$$ as a, $tag$ $$ ; $tag$ as b")
    assert accepted("select 1 /* outer /* inner ; */ still comment ; */")
    refused("select $1; drop table t")  # $1 is a parameter, not a dollar quote


def test_postgres_escape_strings_honour_backslashes() -> None:
    assert accepted(r"select E'it\'s; fine' as s")
    refused(r"select 'a\'; drop table t; --'")  # standard string: the backslash is literal


def test_mysql_lexing_rules() -> None:
    assert accepted(r"select 'it\'s; fine' as s", "mysql")  # backslash escapes (default sql_mode)
    assert accepted('select "a; drop" as s', "mysql")  # a string in MySQL
    assert accepted("select 1 # ; drop table t", "mysql")
    refused("select 1--1; drop table t", "mysql")  # '--' without a space is arithmetic, not a comment
    assert "executable comments" in refused("select 1 /*! ; drop table t */", "mysql")
    refused("select 1 # ; drop table t", "postgresql")  # '#' is an operator there


def test_sqlite_bracket_identifiers() -> None:
    assert accepted("select [a;drop] from t", "sqlite")


# ------------------------------------------------------------------ properties

text_without_nul = st.text(alphabet=st.characters(blacklist_categories=["Cs"], blacklist_characters="\x00"))


@given(st.sampled_from(DIALECTS), text_without_nul)
def test_any_string_literal_content_is_inert(dialect: Dialect, content: str) -> None:
    escaped = content.replace("'", "''")
    if dialect == "mysql":
        escaped = escaped.replace("\\", "\\\\")
    sql = f"select '{escaped}' as status"
    assert accepted(sql, dialect) == sql


@given(
    st.sampled_from(DIALECTS),
    # A trailing "/" would spell "/*" with the closing "*/": a nested opener where comments nest.
    text_without_nul.filter(lambda s: "*/" not in s and "/*" not in s and not s.endswith("/")),
)
def test_any_block_comment_content_is_inert(dialect: Dialect, content: str) -> None:
    assume(not (dialect == "mysql" and content.startswith(("!", "M!"))))  # refused on purpose
    assert accepted(f"select 1 /*{content}*/ as status", dialect).startswith("select 1")


@given(st.sampled_from(DIALECTS), text_without_nul.filter(lambda s: "\n" not in s and "\r" not in s))
def test_any_line_comment_content_is_inert(dialect: Dialect, content: str) -> None:
    assert accepted(f"select 1 as status -- {content}\n", dialect) == "select 1 as status"


@given(text_without_nul.filter(lambda s: "$body$" not in s))
def test_any_dollar_quoted_content_is_inert(content: str) -> None:
    sql = f"select $body${content}$body$ as status"
    assert accepted(sql) == sql


@given(st.sampled_from(DIALECTS), st.sampled_from(sorted(FORBIDDEN_WORDS)), st.sampled_from(["", " ", "\n"]))
def test_a_forbidden_word_anywhere_outside_literals_is_refused(
    dialect: Dialect, word: str, space: str
) -> None:
    message = refused(f"select a from t where b in (select{space} {word.lower()} x)", dialect)  # noqa: S608
    assert word in message


@given(st.sampled_from(DIALECTS), text_without_nul)
def test_a_second_statement_is_always_refused(dialect: Dialect, content: str) -> None:
    escaped = content.replace("'", "''").replace("\\", "\\\\" if dialect == "mysql" else "\\")
    refused(f"select '{escaped}' as status; select 2", dialect)


@given(st.sampled_from(DIALECTS), text_without_nul)
def test_the_lexer_refuses_or_returns_a_part_of_the_input_that_passes_again(
    dialect: Dialect, sql: str
) -> None:
    try:
        statement = read_only_statement(sql, dialect, where=WHERE)
    except CheckDefinitionError:
        return  # refusing is always allowed; any other exception fails the test
    assert statement in sql
    assert read_only_statement(statement, dialect, where=WHERE) == statement
