"""``opsctl train``: build the job image, ship it to the training host, run the job there.

The image is built on this machine from the rendered Dockerfile (``templates/containers``),
the ML core (``ml/``) and, for offline sites, wheels downloaded here; it is shipped with
``docker save | docker load`` unless the training host uses this machine's engine (the
sandbox). The job itself is the rendered ``docker-run.sh`` that provision installed on the
host, so what runs is exactly what ``opsctl render`` shows.
"""
