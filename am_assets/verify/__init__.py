"""Stage: teacher_responses (+ unique_queries) -> verification_outcomes [teacher x shard] (with its
verifier_health check), and verifier_audit (a second-method re-check of a sample)."""


def build(cfg) -> list:
    from am_assets.verify.assets import build_verification_outcomes
    from am_assets.verify.audit_asset import audit_settings, verifier_audit

    return [build_verification_outcomes(cfg), audit_settings, verifier_audit]
