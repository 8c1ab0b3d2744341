"""Action plugin of the release_state module: on the controller, before the module runs on
the load balancer, a change to the release state is refused unless this run holds the
release lock with its audit record open.

The audit callback takes the lock for every playbook that declares a change; this is the
other half, at the one place the state is written: a run with the callback turned off, a
playbook that declares nothing, or a process that guesses a token changes nothing."""
from __future__ import annotations

import os
import sys
from pathlib import Path

from ansible.plugins.action import ActionBase

try:
    from ttsctl import lock
    from ttsctl.settings import Settings
except ImportError:  # run from a checkout whose project is not installed: it sits two levels up
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
    from ttsctl import lock
    from ttsctl.settings import Settings


class ActionModule(ActionBase):
    _supports_check_mode = True

    def run(self, tmp=None, task_vars=None):
        result = super().run(tmp, task_vars)
        if self._task.args.get("action") != "read" and not self._task.check_mode:
            try:
                refusal = lock.change_refusal(Settings.from_env().lock_file, os.environ.get(lock.TOKEN_ENV))
            except ValueError as exc:  # a setting in the environment that cannot be read
                refusal = str(exc)
            if refusal:
                result.update(failed=True, refused=True, changed=False,
                              msg=f"refused: the release state changes only under the release lock, "
                                  f"taken by a playbook that declares its change ({refusal}); "
                                  "nothing was changed")
                return result
        result.update(self._execute_module(module_name="release_state", module_args=self._task.args,
                                           task_vars=task_vars))
        return result
