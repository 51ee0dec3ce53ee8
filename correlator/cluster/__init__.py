"""Scale-out mode: ingest processes publish events to a partitioned NATS JetStream stream, worker
processes take partitions (leases in JetStream KV) and run the pipeline into PostgreSQL.

`bus` connects and declares the stream and buckets, `publish` is the ingest side of the queue
interface, `leases` decides which worker owns which partition, `consume` is the worker side.
docs/cluster.md explains the design.
"""
