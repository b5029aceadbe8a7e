"""Rulesets as files: model, facts, compilation to durable_rules, matching, reconciliation."""
