import json
import os
import sys
import time
from dataclasses import dataclass, field


@dataclass
class Job:
    name: str
    command: list
    retries: int = 3
    timeout: float = 60.0
    env: dict = field(default_factory=dict)


def load_jobs(path):
    """Reads a JSON list of jobs from path and returns Job objects."""
    with open(path) as f:
        raw = json.load(f)
    jobs = []
    for item in raw:
        if "name" not in item or "command" not in item:
            raise ValueError(f"job without a name or command: {item!r}")
        jobs.append(Job(name=item["name"], command=list(item["command"]),
                        retries=int(item.get("retries", 3)),
                        timeout=float(item.get("timeout", 60.0)),
                        env=dict(item.get("env", {}))))
    return jobs


def run_job(job, runner):
    """Runs one job with retries; returns (ok, attempts, seconds)."""
    start = time.monotonic()
    for attempt in range(1, job.retries + 1):
        env = dict(os.environ)
        env.update(job.env)
        code = runner(job.command, env=env, timeout=job.timeout)
        if code == 0:
            return True, attempt, time.monotonic() - start
        print(f"{job.name}: attempt {attempt} failed with {code}", file=sys.stderr)
    return False, job.retries, time.monotonic() - start


def summarize(results):
    """Prints one line per job and a total."""
    failed = 0
    for name, (ok, attempts, seconds) in results.items():
        status = "ok" if ok else "FAILED"
        print(f"{name:20s} {status:6s} {attempts} attempt(s) {seconds:.1f}s")
        failed += not ok
    print(f"{len(results) - failed} of {len(results)} jobs succeeded")
    return failed
