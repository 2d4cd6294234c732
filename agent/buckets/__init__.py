"""Object storage (OSS, any S3): the buckets outputs are delivered to and `oss://` / `s3://` inputs are read from."""
