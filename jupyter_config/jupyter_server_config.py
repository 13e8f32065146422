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

from collections.abc import Sequence

from jupyter_server.base.handlers import FileFindHandler


def page_config_per_page(handler: object, page_config: dict) -> dict:
    """The page config of one page: a copy of the server-wide one."""
    return dict(page_config)


# jupyter_server's FileFindHandler caches where it found a static file by the file's name
# alone, in one dict for every static route. Notebook 7 (/static/notebook/) and JupyterLab
# (/static/lab/) ship the same content-hashed font files, so once a Notebook 7 page had loaded
# one, JupyterLab's request for it resolved to Notebook 7's folder and was refused (403 "not in
# root static directory"; jupyter_server 2.21): a JupyterLab page opened after a Notebook 7
# page logged "Failed to load resource" for its icon fonts. Found by
# tests/browser/test_browser_round9.py. The lookup below is cached per search path too.
_found_static: dict[tuple[tuple[str, ...], str], str] = {}
_find_static = FileFindHandler.get_absolute_path.__func__


def _get_absolute_path(cls: type, roots: Sequence[str], path: str) -> str:
    key = (tuple(roots), path)
    found = _found_static.get(key)
    if found is None:
        with cls._lock:  # type: ignore[attr-defined]
            cls._static_paths.pop(path, None)  # type: ignore[attr-defined]
        found = _find_static(cls, roots, path)
        if found:  # not found ("") is not cached, as upstream
            _found_static[key] = found
    return str(found)


FileFindHandler.get_absolute_path = classmethod(_get_absolute_path)

c = get_config()  # noqa: F821 (traitlets defines it while loading this file)
# A user config that sets tornado_settings too is replaced by this one (files do not merge).
c.ServerApp.tornado_settings = {"page_config_hook": page_config_per_page}
