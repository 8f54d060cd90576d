"""verify's public surface: the verdict function evaluate scores samples with, the answer and
multiple-choice helpers ingest and evaluate share, the audit summary the data card shows.
Everything else in am_assets/verify/ is internal (tests/test_layers.py)."""

from am_assets.verify.audit import audit_markdown
from am_assets.verify.audit_asset import audit_settings_hash
from am_assets.verify.base import Verdict, answer_part
from am_assets.verify.choice import LETTERS, choices_of, mc_question
from am_assets.verify.code_tests import starter_fn_name
from am_assets.verify.judging import Judge
from am_assets.verify.logic import verify_partition

__all__ = ["Judge", "LETTERS", "Verdict", "answer_part", "audit_markdown", "audit_settings_hash", "choices_of", "mc_question",
           "starter_fn_name", "verify_partition"]
