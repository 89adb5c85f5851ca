"""Example device specs and job requirements, valid against the contracts' bounds."""

from __future__ import annotations


def device_spec(**overrides) -> dict:
    """A GPU device spec for DeviceRegistry.register (2x A100 80 GB, region 276), overridable."""
    spec = {
        "cpu_cores": 32,
        "memory_mb": 128 * 1024,
        "gpu_count": 2,
        "gpu_model": b"nvidia-a100-80gb".ljust(32, b"\x00"),
        "vram_mb": 80 * 1024,
        "region": 276,
        "price_per_second": 10**15,
        "max_concurrent_jobs": 4,
        "attestation": b"\x11" * 32,
    }
    spec.update(overrides)
    return spec


def job_requirements(**overrides) -> dict:
    """Requirements for JobEscrow.post: any region, one GPU, priced for 600 compute-seconds."""
    requirements = {
        "min_cpu_cores": 8,
        "min_memory_mb": 1024,
        "min_gpu_count": 1,
        "min_vram_mb": 1024,
        "region": 0,
        "attested_only": False,
        "compute_seconds": 600,
    }
    requirements.update(overrides)
    return requirements
