"""Browser tests: a real JupyterLab driven by headless Chromium through Playwright."""
