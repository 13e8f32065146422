"""Jupyter server settings of `make demo`, which puts this folder on JUPYTER_CONFIG_PATH (so
the user's own Jupyter config still loads, beneath it); the browser tests start their servers
the same way.

jupyterlab_server's LabHandler writes each JupyterLab page's "treePath", "workspace" and
"mode" into the server-wide page config (settings["page_config_data"], no copy), and Notebook
7's pages start from that same dict. So once a JupyterLab page was served, every Notebook 7
page of the server (/tree, /notebooks/...) carried the last JupyterLab file as its treePath:
Notebook 7's tree resolver (whose route matches every URL) handed it to the file browser's
restorer, which ran 'filebrowser:open-path', a command Notebook 7's notebook page does not
have ("Command 'filebrowser:open-path' not registered"). The page config hook, which both
handlers call, gives each page its own copy, so nothing one page sets reaches another.
"""


def page_config_per_page(handler: object, page_config: dict) -> dict:
    """The page config of one page: a copy of the server-wide one."""
    return dict(page_config)


c = get_config()  # noqa: F821 (traitlets defines it while loading this file)
# A user config that sets tornado_settings too is replaced by this one (files do not merge).
c.ServerApp.tornado_settings = {"page_config_hook": page_config_per_page}
