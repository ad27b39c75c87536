copy listing
from 's3://mybucket/data/listings/parquet/'
iam_role 'arn:aws:iam::012345678901:role/MyRedshiftRole'
format as parquet;
