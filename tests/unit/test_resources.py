"""The pool's arithmetic: what fits, what never fits, which GPUs a job gets, who waits."""

import threading
import time

import pytest

from harness.resources import (Capacity, GpuAsk, JobRequest, JobResources, Pool, auto_jobs, clamp, cpu_quota,
                               machine_gpu_ids, parse_gpus, refusal, request_for, slots, visible_gpus)

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


def test_gpus_option_reads_a_count_all_or_device_ids():
    assert parse_gpus("2") == GpuAsk(count=2) and parse_gpus("0") == GpuAsk(count=0)
    assert parse_gpus("all") == parse_gpus(" ALL ") == GpuAsk(ids=("all",)) and parse_gpus("all").every
    assert parse_gpus("0,2") == GpuAsk(count=2, ids=("0", "2"))
    assert parse_gpus("device=1") == GpuAsk(count=1, ids=("1",)), "one id needs device= (a bare 1 is a count)"
    assert parse_gpus("device=GPU-8f3a,GPU-77b1").ids == ("GPU-8f3a", "GPU-77b1")
    for wrong in ("-1", "two", "0,", "device=", "0,0", "1.5", "0;rm", "device=all"):
        with pytest.raises(ValueError, match="--gpus"):
            parse_gpus(wrong)
    assert machine_gpu_ids(parse_gpus("3")) == ("0", "1", "2") and machine_gpu_ids(parse_gpus("1,3")) == ("1", "3")


def test_the_gpus_option_wins_over_the_assignment(assignments):
    loaded = assignments["ox"]
    assert request_for(loaded).gpus == loaded.spec.resources.gpus == 0
    assert request_for(loaded, gpus=GpuAsk(count=2)).gpus == 2
    assert request_for(loaded, gpus=parse_gpus("0,2")).gpu_ids == ("0", "2")


def test_named_gpus_are_handed_out_by_id_and_jobs_naming_the_same_one_wait():
    pool = Pool(MACHINE)
    named = JobRequest(cpus=1, memory_mb=1000, gpus=2, gpu_ids=("2", "0"))
    first = pool.take(named)
    assert first.gpu_ids == ("2", "0") and pool.free_gpus == ["1"]
    assert not pool.fits(JobRequest(cpus=1, memory_mb=1000, gpus=1, gpu_ids=("0",))), "GPU 0 is taken"
    assert pool.fits(JobRequest(cpus=1, memory_mb=1000, gpus=1)), "any one GPU: 1 is free"
    assert pool.take(JobRequest(cpus=1, memory_mb=1000, gpus=1)).gpu_ids == ("1",)
    pool.give_back(first)
    assert pool.free_gpus == ["0", "2"] and pool.fits(JobRequest(cpus=1, memory_mb=1000, gpus=1, gpu_ids=("0",)))
    assert slots(named, MACHINE) == 1 and slots(JobRequest(cpus=1, memory_mb=1000, gpus=1), MACHINE) == 3


def test_all_gpus_means_every_gpu_of_the_machine_for_one_job_at_a_time():
    every = JobRequest(cpus=1, memory_mb=1000, gpu_ids=("all",))
    pool = Pool(MACHINE)
    assert slots(every, MACHINE) == 1
    small = pool.take(JobRequest(cpus=1, memory_mb=1000, gpus=1))
    assert not pool.fits(every), "one GPU is held: all must wait"
    pool.give_back(small)
    held = pool.take(every)
    assert held.gpu_ids == ("0", "1", "2") and pool.free_gpus == [], "the record lists the devices by id"
    assert not pool.fits(JobRequest(cpus=1, memory_mb=1000, gpus=1)) and not pool.fits(every)
    pool.give_back(held)
    assert pool.free_gpus == ["0", "1", "2"]


def test_gpu_requests_that_can_never_fit_are_refused_with_what_the_machine_has():
    assert "has no GPU 5 (its GPUs: 0, 1, 2)" in refusal(JobRequest(gpus=2, gpu_ids=("0", "5")), MACHINE)
    assert "every GPU (--gpus all) and this machine has none" in refusal(JobRequest(gpu_ids=("all",)),
                                                                       Capacity(cpus=2, memory_mb=4000))
    assert refusal(JobRequest(gpu_ids=("all",)), MACHINE) is None
    assert slots(JobRequest(gpus=1, gpu_ids=("7",)), MACHINE) == 0
    pool = Pool(MACHINE)
    with pytest.raises(ValueError, match="no GPU 7"):
        pool.acquire(JobRequest(gpus=1, gpu_ids=("7",)))


def test_two_threads_naming_the_same_gpu_never_hold_it_together():
    pool = Pool(MACHINE)
    holding, overlaps, lock = set(), [], threading.Lock()

    def job(request):
        held = pool.acquire(request)
        with lock:
            if set(held.gpu_ids) & holding:
                overlaps.append(held.gpu_ids)
            holding.update(held.gpu_ids)
        time.sleep(0.05)
        with lock:
            holding.difference_update(held.gpu_ids)
        pool.release(held)

    one = JobRequest(cpus=1, memory_mb=1000, gpus=1, gpu_ids=("1",))
    requests = [one, JobRequest(cpus=1, memory_mb=1000, gpus=2), JobRequest(cpus=1, memory_mb=1000, gpu_ids=("all",)), one]
    threads = [threading.Thread(target=job, args=(r,)) for r in requests * 2]
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)
    assert overlaps == [] and pool.free_gpus == ["0", "1", "2"] and pool.running == 0


def test_ray_takes_gpus_by_count_and_refuses_device_ids():
    from harness.executors.base import ExecutorSettings
    from harness.executors.raycluster import RayExecutor
    ray = RayExecutor(ExecutorSettings())
    ray.nodes = [Capacity(cpus=4, memory_mb=16_000, gpu_ids=("0",)), MACHINE]
    assert "cannot honour device ids" in ray.refusal(JobRequest(gpus=1, gpu_ids=("0",)))
    assert ray.refusal(JobRequest(gpus=3)) is None and "asks for 4 GPU(s)" in ray.refusal(JobRequest(gpus=4))
    every = JobRequest(cpus=1, memory_mb=1000, gpu_ids=("all",))
    assert ray.refusal(every) is None and ray.counted(every).gpus == 3 and ray.counted(every).gpu_ids == ()
    ray.nodes = [Capacity(cpus=4, memory_mb=16_000)]
    assert "every GPU (--gpus all) and the Ray cluster has none" in ray.refusal(every)


def test_the_command_line_refuses_a_gpu_request_it_cannot_read(capsys):
    from conftest import ROOT
    from harness.cli import EXIT_USAGE, grade_main
    alice = str(ROOT / "submissions" / "alice")
    assert grade_main(["--gpus", "two", alice]) == EXIT_USAGE
    assert "--gpus takes `all`, a number of GPUs" in capsys.readouterr().err
    assert grade_main(["--executor", "ray", "--gpus", "0,1", "--quick", alice]) == EXIT_USAGE
    assert "cannot honour device ids" in capsys.readouterr().err
    assert grade_main(["--executor", "ray", "--machine-gpus", "2", "--quick", alice]) == EXIT_USAGE


def test_one_device_under_two_spellings_is_one_gpu():
    """CUDA and the NVIDIA runtime read a device index as a number: `00` is GPU 0, and a device listed twice
    in CUDA_VISIBLE_DEVICES is one device. The pool must not hand it to two jobs."""
    for wrong in ("0,00", "device=1,01"):
        with pytest.raises(ValueError, match="twice"):
            parse_gpus(wrong)
    assert parse_gpus("device=01").ids == ("1",) and parse_gpus("007,2").ids == ("7", "2")
    assert visible_gpus("0,0,1", []) == ("0", "1") and visible_gpus("1,01", []) == ("1",)
    pool = Pool(Capacity(cpus=8, memory_mb=32_000, gpu_ids=visible_gpus("0,0", [])))
    first = pool.acquire(JobRequest(cpus=1, memory_mb=1000, gpus=1))
    assert first.gpu_ids == ("0",) and not pool.fits(JobRequest(cpus=1, memory_mb=1000, gpus=1))


def test_a_cuda_visible_devices_entry_that_is_no_device_id_ends_the_list():
    """CUDA enumerates CUDA_VISIBLE_DEVICES up to its first entry that names no device. `all` there is no
    id: as one it reached the sandboxes, which read ("all",) as every GPU of the machine."""
    assert visible_gpus("all", []) == ()
    assert visible_gpus("0,all,1", []) == ("0",) and visible_gpus("1,x y", []) == ("1",)


def test_a_negative_memory_limit_is_refused_on_the_command_line(capsys):
    """`--memory -5` would make the pool's memory count go negative (more jobs at once than memory holds)."""
    from conftest import ROOT
    from harness.cli import EXIT_USAGE, grade_main
    alice = str(ROOT / "submissions" / "alice")
    for bad in ("-5", "0", "lots"):
        assert grade_main(["--memory", bad, "--quick", alice]) == EXIT_USAGE
        assert "--memory" in capsys.readouterr().err
