copy venue from 's3://b/venue_pipe' iam_role 'arn:aws:iam::123456789012:role/copy' delimiter '|' null as '\N' escape removequotes ignoreblanklines fillrecord
