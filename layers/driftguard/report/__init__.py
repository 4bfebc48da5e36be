"""`driftguard report`: one self-contained HTML file of the checks, their series and expected bands,
schema changes and deliveries. `model` reads the Store port (pure of HTML); `render` draws it."""

from driftguard.report.model import Report, build_report
from driftguard.report.render import render_html, write_report

__all__ = ["Report", "build_report", "render_html", "write_report"]
