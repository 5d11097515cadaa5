"""A Chaos Toolkit control that signs the journal with the game day's run id.

``chaosregistry gameday`` gives each run an id and hands ``chaos run`` a control file naming this
module (``--control-file``) with the id as its argument. When the experiment ends, Chaos Toolkit
calls :func:`after_experiment_control` with the journal it is about to write; the id goes into the
journal's ``extensions`` (``{"name": "chaosregistry-run", "run_id": ...}``). The verdict finds it
there: a journal without it, or with another run's, is not this run's (a ``chaos run`` that died
before writing its journal leaves the previous run's in a reused run directory).

Imported inside ``chaos run``: it imports nothing.
"""

from typing import Any

EXTENSION = "chaosregistry-run"


def control_file(run_id: str) -> dict[str, Any]:
    """The content of the control file (JSON) that loads this control with ``run_id``."""
    return {
        EXTENSION: {
            "provider": {
                "type": "python",
                "module": __name__,
                "arguments": {"run_id": run_id},
            }
        }
    }


def after_experiment_control(context: Any, state: Any = None, run_id: str = "") -> None:
    """Add ``{"name": "chaosregistry-run", "run_id": run_id}`` to the journal's extensions."""
    if isinstance(state, dict) and run_id:
        extensions = state.get("extensions")
        if not isinstance(extensions, list):
            extensions = state["extensions"] = []
        extensions.append({"name": EXTENSION, "run_id": run_id})


def run_id_of(journal: Any) -> str | None:
    """The run id a journal carries (:func:`after_experiment_control`), or None."""
    extensions = journal.get("extensions") if isinstance(journal, dict) else None
    for extension in extensions if isinstance(extensions, list) else []:
        if isinstance(extension, dict) and extension.get("name") == EXTENSION:
            run_id = extension.get("run_id")
            return run_id if isinstance(run_id, str) else None
    return None
