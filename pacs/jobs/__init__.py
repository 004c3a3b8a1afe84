"""Durable background work: a job queue in the index database, runners, a leader-run scheduler.

Work that must survive a restart (forwarding, reports, purges) is a job; work
that may be lost (a metric) is an in-process event (see pacs.archive.events).
"""

from pacs.jobs.queue import JobNotFound, JobState, JobStateError, JobView
from pacs.jobs.service import Jobs, RunningJobs

__all__ = ["JobNotFound", "JobState", "JobStateError", "JobView", "Jobs", "RunningJobs"]
