"""Run the charlm job on the spec's Slurm cluster: render the sbatch script, submit it on the
controller, expand hyperparameter sweeps into job arrays, and read back status, logs and results.

Example::

    from opsctl.slurm import jobs
    job = jobs.build_job(site, nodes=2, sweep="lr=1e-3,3e-4")
    job_id = jobs.submit(site, job)
    rows = jobs.results(site, job_id)
"""
