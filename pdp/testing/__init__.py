"""Policy unit tests: test files beside the policies, run through the engine (`pdp test`).

- `model`: the `*_test.toml` format (fixtures, table-driven cases, expectations), read into tests;
- `runner`: decides each test's request, compares it with the expectation, explains failures;
- `coverage`: which rules, role grants and `or`/`unless` branches the tests exercised;
- `reporters`: text, JSON and JUnit XML; `cli`: the `pdp test` command;
- `pytest_plugin`: collects `*_test.toml` files as pytest items (entry point `pytest11`).
"""
