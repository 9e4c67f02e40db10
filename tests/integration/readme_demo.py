"""The README's first command, `bash deploy/local/demo.sh`, run as a user would (with the
binaries of this build instead of building again) and held to what it says it shows: it
exits 0; `pgvalve plan` refuses because of the planted orphans; `pgvalve apply` commits
0042's 11 foreign keys, CHECK and NOT NULL under the write load, all valid; the clients saw
zero errors; 0043 is rolled back by itself once an application writes orphans after its
cutover, and 0042's constraints stay.

ctest runs it as integration.demo in Release builds only (tests/integration/CMakeLists.txt):
the demo is about what users see, and test_apply.py covers the same paths under ASan."""

import os
import re
import shutil
import subprocess
import tempfile

import harness

DEMO = os.path.join(harness.REPO, "deploy", "local", "demo.sh")

CONSTRAINTS_0042 = [
    "config_versions.config_versions_author_id_fkey",
    "config_versions.config_versions_workspace_id_fkey",
    "stages.stages_instance_id_fkey",
    "stages.stages_workspace_id_fkey",
    "submissions.submissions_score_check",
    "submissions.submissions_stage_id_fkey",
    "submissions.submissions_user_id_fkey",
    "submissions.submissions_workspace_id_fkey",
    "users.users_workspace_id_fkey",
    "workflow_instances.workflow_instances_config_version_id_fkey",
    "workflow_instances.workflow_instances_started_by_fkey",
    "workflow_instances.workflow_instances_workspace_id_fkey",
]


def test_readme_demo_shows_what_it_says():
    # The demo's temp dirs go here: the server runs as `postgres` and must be able to enter it.
    work = tempfile.mkdtemp(prefix="pgvalve-readme-demo-")
    os.chmod(work, 0o755)
    env = dict(os.environ)
    env.update({"PGVALVE_PROXY": os.path.abspath(harness.proxy_binary()),
                "PGVALVE_COORDINATOR": os.path.abspath(harness.coordinator_binary()),
                "PGVALVE_SKIP_DEPS": "1", "TMPDIR": work})
    try:
        r = subprocess.run(["bash", DEMO, "--no-build"], cwd=harness.REPO, env=env, stdin=subprocess.DEVNULL,
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, timeout=900)
        left = os.listdir(work)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    err = re.sub(r"\x1b\[[0-9;]*m", "", r.stderr)
    story = f"--- demo stderr:\n{err[-6000:]}\n--- demo stdout:\n{r.stdout[-3000:]}"
    assert r.returncode == 0, story
    assert harness.sanitizer_report(r.stderr + r.stdout) is None, story

    # plan finds the planted orphans and refuses
    assert "plan refuses (exit 1)" in err, story
    assert "Preflight: 3 error(s)" in err, story
    # apply commits 0042 under the load
    assert "migration 1 committed: 13 constraint(s) in place and valid" in err, story
    assert re.search(r"^  transactions during apply: +[1-9]\d*$", err, re.M), story
    assert re.search(r"^  client errors: +0$", err, re.M), story
    listed = re.findall(r"^    (\S+)  (valid|NOT VALID)$", err, re.M)
    assert sorted(listed) == [(c, "valid") for c in CONSTRAINTS_0042], story
    assert "stages.position NOT NULL: true" in err, story
    # 0043 is rolled back by itself; status shows both outcomes
    assert "rollback rule tripped" in err, story
    assert "0043 rolled back by itself (exit 3)" in err, story
    assert re.search(r"^  2 +0043_reviewer_fk +rolled_back ", err, re.M), story
    assert re.search(r"^  1 +0042_constraints +committed ", err, re.M), story
    # the proxy drained and exited 0 on SIGTERM (demo.sh's proxy.sh says so otherwise)
    assert "stopping pgvalve-proxy (SIGTERM drains)" in err, story
    assert "exited with status" not in err and "still running" not in err, story
    # it cleans up after itself: nothing is left in its temp dir
    assert left == [], (left, story)
