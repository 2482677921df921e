"""Seeded studies of the paper's claims: named sets of configurations × seeds, each trial a search
and the training of its genotype, summarised with paired differences and a noise floor."""

from .runner import StudyConfig, Trial, plan_trials, run_study
from .sets import Entry, get_study_set, load_study_file, study_set, study_sets
from .summary import aggregate, format_markdown

__all__ = ["StudyConfig", "Trial", "plan_trials", "run_study", "Entry", "get_study_set",
           "load_study_file", "study_set", "study_sets", "aggregate", "format_markdown"]
