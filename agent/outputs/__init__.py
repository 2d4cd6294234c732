"""Run outputs delivered to object storage (OSS or any S3 API): where they go, with which credentials, how."""
