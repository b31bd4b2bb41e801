"""Clear task instances of an existing DAG run and finish that same run, as the Airflow UI would.

``dag.test()`` always deletes the run of its logical date and starts a new one, so it cannot show what
a user does after a table failed: clear that table's mapped instance (with its downstream) in the
failed run and let the scheduler finish the run. This helper does exactly that with Airflow's own
functions:

* :func:`clear_in_run` is the body of the REST endpoint behind the UI's *Clear* button
  (``POST /dags/{dag_id}/clearTaskInstances`` with ``dag_run_id``, ``task_ids=[(task_id, map_index)]``,
  ``include_downstream``): ``find_relevant_relatives`` picks the same map index inside a mapped task
  group and every unmapped downstream task, then ``dag.clear(dry_run=True)`` +
  ``clear_task_instances``, which puts the finished run back to ``queued``.
* :func:`finish_run` is the scheduling loop of ``dag.test()`` (``DagRun.update_state`` + the
  in-process ``_run_task``) applied to that run instead of a new one.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from typing import Any


def _run(session, dag_id: str, run_id: str):
    from airflow.models.dagrun import DagRun
    from sqlalchemy import select

    run = session.scalar(select(DagRun).where(DagRun.dag_id == dag_id, DagRun.run_id == run_id))
    if run is None:
        raise LookupError(f"no run {run_id!r} of {dag_id!r}")
    return run


def clear_in_run(
    dag_id: str,
    run_id: str,
    task_markers: Iterable[str | tuple[str, int]],
    *,
    include_downstream: bool = True,
) -> list[tuple[str, int]]:
    """Clear task instances of one run (UI semantics); returns the (task_id, map_index) cleared."""
    from airflow.models.dagbag import DBDagBag
    from airflow.models.taskinstance import clear_task_instances, find_relevant_relatives
    from airflow.utils.session import create_session
    from airflow.utils.state import DagRunState

    with create_session() as session:
        run = _run(session, dag_id, run_id)
        dag = DBDagBag().get_dag_for_run(run, session)
        mapped = {t for t in task_markers if isinstance(t, tuple)}
        normal = {t for t in task_markers if not isinstance(t, tuple)}
        if include_downstream:
            relatives = find_relevant_relatives(
                normal, mapped, dag=dag, run_id=run_id, direction="downstream", session=session
            )
            normal.update(t for t in relatives if not isinstance(t, tuple))
            mapped.update(t for t in relatives if isinstance(t, tuple))
        markers = [*normal, *((t, m) for t, m in mapped if t not in normal)]
        tis = dag.clear(dry_run=True, task_ids=markers, run_id=run_id, session=session)
        cleared = sorted((ti.task_id, ti.map_index) for ti in tis)
        clear_task_instances(list(tis), session, DagRunState.QUEUED)
        session.commit()
    return cleared


def finish_run(dag: Any, run_id: str, timeout: float = 120.0):
    """Run the ready task instances of an existing run until it ends, like ``dag.test()``'s loop."""
    from airflow.models.dagbag import DBDagBag
    from airflow.sdk import timezone
    from airflow.sdk.definitions.dag import _run_task
    from airflow.utils.session import create_session
    from airflow.utils.state import DagRunState, TaskInstanceState

    deadline = time.monotonic() + timeout
    with create_session() as session:
        run = _run(session, dag.dag_id, run_id)
        run.dag = DBDagBag().get_dag_for_run(run, session)  # what the scheduler gives a run it schedules
        run.state = DagRunState.RUNNING
        session.commit()
        while run.state == DagRunState.RUNNING:
            if time.monotonic() > deadline:
                raise TimeoutError(f"run {run_id} still running after {timeout} s")
            session.expire_all()
            schedulable, _ = run.update_state(session=session)
            for ti in schedulable:
                if ti.state != TaskInstanceState.UP_FOR_RESCHEDULE:
                    ti.try_number += 1
                ti.state = TaskInstanceState.SCHEDULED
                ti.scheduled_dttm = timezone.utcnow()
            session.commit()
            scheduled = [
                ti
                for ti in run.get_task_instances(session=session)
                if ti.state == TaskInstanceState.SCHEDULED
            ]
            if not scheduled and run.state == DagRunState.RUNNING:
                time.sleep(0.5)
            for ti in scheduled:
                _run_task(ti=ti, task=dag.task_dict[ti.task_id])
    with create_session() as session:
        run = _run(session, dag.dag_id, run_id)
        session.expunge(run)
    return run
