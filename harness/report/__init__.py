"""Study reports: paper-layout tables, figures and summaries regenerated from stored trials.

``write_report(study_folder)`` or ``python -m harness.report <study_folder>``.
"""

from harness.report.build import ReportError, load_study, write_report
from harness.report.paper_tables import paper_row, paper_tables

__all__ = ["ReportError", "load_study", "paper_row", "paper_tables", "write_report"]
