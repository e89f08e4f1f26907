"""The pool's arithmetic: what fits, what never fits, which GPUs a job gets, who waits."""

import threading
import time

import pytest

from harness.resources import (Capacity, JobRequest, JobResources, Pool, auto_jobs, clamp, cpu_quota, refusal,
                               slots, visible_gpus)

MACHINE = Capacity(cpus=8, memory_mb=32_000, gpu_ids=("0", "1", "2"))


def test_slots_are_the_scarcest_resource():
    assert slots(JobRequest(cpus=1, memory_mb=8192, gpus=0), MACHINE) == 3  # memory: 32,000 // 8,192
    assert slots(JobRequest(cpus=2, memory_mb=1000, gpus=0), MACHINE) == 4  # CPUs
    assert slots(JobRequest(cpus=1, memory_mb=1000, gpus=2), MACHINE) == 1  # GPUs: 3 // 2
    assert slots(JobRequest(cpus=0.5, memory_mb=1000, gpus=0), MACHINE) == 16


def test_a_job_that_can_never_fit_is_refused_with_the_numbers():
    assert "asks for 4 GPU(s) per job and this machine has 3" in refusal(JobRequest(gpus=4), MACHINE)
    assert "40,000 MB and this machine has 32,000 MB" in refusal(JobRequest(memory_mb=40_000), MACHINE)
    assert refusal(JobRequest(cpus=64, memory_mb=1000), MACHINE) is None  # CPU is time-shared: clamped, not refused
    assert clamp(JobRequest(cpus=64), MACHINE).cpus == 8
    assert slots(JobRequest(gpus=4), MACHINE) == 0


def test_auto_jobs_is_what_the_largest_fitting_share_allows():
    assert auto_jobs([JobRequest(cpus=1, memory_mb=8192)], Capacity(cpus=2, memory_mb=23_000)) == 2
    assert auto_jobs([JobRequest(cpus=1, memory_mb=8192)], Capacity(cpus=16, memory_mb=23_000)) == 2
    assert auto_jobs([JobRequest(memory_mb=8192), JobRequest(memory_mb=2048)], Capacity(cpus=16, memory_mb=16_384)) == 8
    assert auto_jobs([], Capacity(cpus=2, memory_mb=1000)) == 1


def test_two_jobs_never_share_a_gpu_and_gpus_come_back():
    pool = Pool(MACHINE)
    first = pool.take(JobRequest(cpus=1, memory_mb=1000, gpus=2))
    assert first.gpu_ids == ("0", "1")
    assert not pool.fits(JobRequest(cpus=1, memory_mb=1000, gpus=2))
    second = pool.take(JobRequest(cpus=1, memory_mb=1000, gpus=1))
    assert second.gpu_ids == ("2",) and not set(first.gpu_ids) & set(second.gpu_ids)
    pool.give_back(first)
    assert pool.free_gpus == ["0", "1"]
    assert pool.fits(JobRequest(cpus=1, memory_mb=1000, gpus=2))
    pool.give_back(second)
    assert pool.free_gpus == ["0", "1", "2"] and pool.cpus_used == 0 and pool.memory_used == 0 and pool.running == 0


def test_memory_and_max_jobs_bound_what_runs_at_once():
    pool = Pool(Capacity(cpus=8, memory_mb=10_000), max_jobs=3)
    held = [pool.take(JobRequest(cpus=1, memory_mb=4000)), pool.take(JobRequest(cpus=1, memory_mb=4000))]
    assert not pool.fits(JobRequest(cpus=1, memory_mb=4000))  # 12,000 > 10,000
    assert pool.fits(JobRequest(cpus=1, memory_mb=2000))
    pool.take(JobRequest(cpus=1, memory_mb=1000))
    assert not pool.fits(JobRequest(cpus=1, memory_mb=100))  # max_jobs
    pool.give_back(held[0])
    assert pool.fits(JobRequest(cpus=1, memory_mb=4000))


def test_acquire_waits_in_arrival_order_and_refuses_the_impossible():
    pool = Pool(Capacity(cpus=2, memory_mb=10_000, gpu_ids=("0",)))
    with pytest.raises(ValueError, match="GPU"):
        pool.acquire(JobRequest(gpus=2))
    big = JobRequest(cpus=2, memory_mb=1000)
    small = JobRequest(cpus=1, memory_mb=1000)
    holding = pool.acquire(small)
    order = []

    def take(name, request):
        held = pool.acquire(request)
        order.append(name)
        time.sleep(0.05)
        pool.release(held)

    waiter = threading.Thread(target=take, args=("big", big))
    waiter.start()
    time.sleep(0.2)  # big is waiting for the CPU the first job holds
    late = threading.Thread(target=take, args=("small", small))
    late.start()
    time.sleep(0.2)
    assert order == [], "the small job must not overtake the big one that came first"
    pool.release(holding)
    waiter.join(5)
    late.join(5)
    assert order == ["big", "small"]


def test_acquire_gives_up_when_the_run_stops():
    pool = Pool(Capacity(cpus=1, memory_mb=1000))
    held = pool.acquire(JobRequest(cpus=1, memory_mb=500))
    stop = threading.Event()
    result = {}
    waiter = threading.Thread(target=lambda: result.setdefault("r", pool.acquire(JobRequest(cpus=1, memory_mb=500), stop)))
    waiter.start()
    stop.set()
    waiter.join(5)
    assert result["r"] is None
    pool.release(held)
    assert isinstance(pool.acquire(JobRequest(cpus=1, memory_mb=500)), JobResources)  # the queue moved on


def test_gpus_and_cpu_quota_are_read_like_the_drivers_do():
    assert visible_gpus("2,3", []) == ("2", "3")
    assert visible_gpus("", ["GPU 0: A100 (UUID: x)"]) == ()
    assert visible_gpus("-1", []) == ()
    assert visible_gpus(None, ["GPU 0: A100 (UUID: x)", "GPU 1: A100 (UUID: y)", "  MIG 1g.5gb"]) == ("0", "1")
    assert visible_gpus(None, []) == ()
    assert cpu_quota("150000 100000", None, None) == 1.5
    assert cpu_quota("max 100000", None, None) is None
    assert cpu_quota(None, "200000", "100000") == 2
    assert cpu_quota(None, "-1", "100000") is None


def test_a_job_that_has_to_wait_says_so_once_and_one_that_fits_says_nothing():
    pool = Pool(Capacity(cpus=2, memory_mb=1000))
    told = []
    held = pool.acquire(JobRequest(cpus=1, memory_mb=600), waiting=lambda: told.append("first"))
    assert told == [] and held is not None  # it fitted at once
    got = {}

    def second():
        got["held"] = pool.acquire(JobRequest(cpus=1, memory_mb=600), waiting=lambda: told.append("second"))

    waiter = threading.Thread(target=second)
    waiter.start()
    deadline = time.monotonic() + 5
    while not told and time.monotonic() < deadline:
        time.sleep(0.01)
    time.sleep(0.6)  # a wake-up of the wait (every 0.5 s) does not say it again
    assert told == ["second"] and "held" not in got  # memory: 600 + 600 > 1000
    pool.release(held)
    waiter.join(5)
    assert told == ["second"] and got["held"].memory_mb == 600
