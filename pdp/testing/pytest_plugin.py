"""pytest plugin (entry point `pytest11`): collects policy test files as test items."""
