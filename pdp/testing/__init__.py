"""Policy unit tests: test files beside the policies, run through the engine (`pdp test`)."""
