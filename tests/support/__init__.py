"""Test support shared by the test packages: free ports, waiting for a condition, the real
``python -m webapp serve``/``emulate`` processes, Debian's chromium through Playwright, test
users, small capture folders and the emulator's test-speed timings."""
