"""The README's first command, `bash deploy/local/demo.sh`, run as a user would (with the
binaries of this build instead of building again) and held to what it says it shows: it
exits 0; `pgvalve audit` on the schema without foreign keys finds the 8 keys whose columns
name their table and 3 of the 4 planted orphan rows (on the keys it suggests), and writes
those keys with their indexes as a migration, which the demo completes by hand; `pgvalve plan`
refuses it because of all 4 orphans, and accepts it once they are deleted; `pgvalve apply`
commits 0042's 11 foreign keys, CHECK and NOT NULL (after its 11 indexes) under the write
load, all valid; the clients saw zero errors; the audit then finds nothing wrong; 0043 is
rolled back by itself once an application writes orphans after its cutover, and 0042's
constraints stay.

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


# What `pgvalve audit --suggest` finds missing: the keys whose column names its table, with the
# rows each would find orphaned (the planted ones).
SUGGESTED = sorted([
    ("config_versions", "workspace_id", "workspaces", 0),
    ("stages", "workspace_id", "workspaces", 0),
    ("submissions", "workspace_id", "workspaces", 0),
    ("submissions", "stage_id", "stages", 2),
    ("submissions", "user_id", "users", 1),
    ("users", "workspace_id", "workspaces", 0),
    ("workflow_instances", "workspace_id", "workspaces", 0),
    ("workflow_instances", "config_version_id", "config_versions", 0),
])


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

    # audit finds the missing keys and the planted orphans on them, and writes the migration
    assert "pgvalve audit: 6 table(s), 0 foreign key(s)" in err, story
    assert re.search(r"^    findings: 2 error\(s\)", err, re.M), story
    assert re.search(r"^    missing foreign keys: 8 suggested$", err, re.M), story
    assert re.search(r"^    orphans +2 row\(s\) of public\.submissions have stage_id values that public\.stages "
                     r"does not have", err, re.M), story
    assert re.search(r"^    orphans +1 row\(s\) of public\.submissions have user_id values that public\.users "
                     r"does not have", err, re.M), story
    suggested = [(t, c, ref, int(n)) for t, c, ref, n in re.findall(
        r"^ +\d+\. public\.(\w+) \((\w+)\) \S+ public\.(\w+) \(id\)  orphans: (\d+)$", err, re.M)]
    assert sorted(suggested) == SUGGESTED, story
    assert "0042_fks.sql: 8 foreign keys, and the 8 indexes their columns lack" in err, story
    assert "0042_constraints.sql = 0042_fks.sql + these: 11 foreign keys, a CHECK, a NOT NULL, 11 indexes" in err, story
    # plan finds the planted orphans (the audit's 3 and the one on a key added by hand) and refuses
    assert "plan refuses (exit 1)" in err, story
    assert "Preflight: 3 error(s)" in err, story
    refused = re.findall(r"^    error   orphans +(\w+) on \w+: (\d+) row\(s\)", err, re.M)
    assert sorted(refused) == [("stages_instance_id_fkey", "1"), ("submissions_stage_id_fkey", "2"),
                               ("submissions_user_id_fkey", "1")], story
    # once they are deleted, plan accepts the audit's migration as it is
    assert "Preflight: 0 error(s)" in err, story
    assert "plan accepts 0042 now (exit 0)" in err, story
    # apply commits 0042 under the load
    assert "migration 1 committed: 13 constraint(s) in place and valid" in err, story
    built = re.findall(r"^  prepare: CREATE INDEX CONCURRENTLY \"?(\w+)\"? ON ", err, re.M)
    # the 8 indexes the audit wrote, and the 3 added by hand with their keys
    assert sorted(built) == sorted([f"{t}_{c}_idx" for t, c, _, _ in SUGGESTED] + [
        "config_versions_author_id_idx", "stages_instance_id_idx", "workflow_instances_started_by_idx"]), story
    assert "self-test: 13/13 constraints enforce" in err, story   # each one proven, rolled back
    assert re.search(r"^  transactions during apply: +[1-9]\d*$", err, re.M), story
    assert re.search(r"^  client errors: +0$", err, re.M), story
    listed = re.findall(r"^    (\S+)  (valid|NOT VALID)$", err, re.M)
    assert sorted(listed) == [(c, "valid") for c in CONSTRAINTS_0042], story
    assert "stages.position NOT NULL: true" in err, story
    # and the audit finds nothing more to fix
    assert "    pgvalve audit: 6 table(s), 11 foreign key(s)" in err, story
    assert re.search(r"^      findings: 0 error\(s\), 0 warning\(s\)", err, re.M), story
    assert re.search(r"^      missing foreign keys: 0 suggested$", err, re.M), story
    # 0043 is rolled back by itself; status shows both outcomes
    assert "rollback rule tripped" in err, story
    assert "0043 rolled back by itself (exit 3)" in err, story
    assert re.search(r"^  2 +0043_reviewer_fk +rolled_back ", err, re.M), story
    assert re.search(r"^  1 +0042_constraints +committed ", err, re.M), story
    # pgvalve report: the damage the rolled-back key did, counted as the clients saw it
    assert re.search(r'^    submissions_reviewer_id_fkey on "submissions": \d+ row\(s\) violate it now; '
                     r'[1-9]\d* client error\(s\) from it during the watch$', err, re.M), story
    assert "constraints of every affected table equal the snapshot: yes" in err, story
    # the proxy drained and exited 0 on SIGTERM (demo.sh's proxy.sh says so otherwise)
    assert "stopping pgvalve-proxy (SIGTERM drains)" in err, story
    assert "exited with status" not in err and "still running" not in err, story
    # it cleans up after itself: nothing is left in its temp dir
    assert left == [], (left, story)
