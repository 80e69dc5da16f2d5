"""Study CLI: YAML study files -> trials -> store -> report (the top layer)."""

from harness.study.config import StudyConfig, StudyConfigError, load_study, parse_study

__all__ = ["StudyConfig", "StudyConfigError", "load_study", "parse_study"]
