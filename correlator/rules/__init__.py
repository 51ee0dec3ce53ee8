"""Rule files and first-level correlation (filter, enrich, classify, de-duplicate, rate-limit).

Public API for other rule kinds: correlator.rules.matchers (compile_matcher, compile_field,
compile_template, RuleError) and correlator.rules.registry (register_kind). See docs/rules.md.
"""
