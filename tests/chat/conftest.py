import sys
import pathlib

import pytest

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))

from jinja_env import renderer  # noqa: E402


@pytest.fixture(scope="session", autouse=True)
def _need_renderer():
    if not renderer().exists():
        pytest.fail(f"{renderer()} not built: run make tests")
