copy category from 's3://b/category_csv.txt' iam_role default csv quote as '%' delimiter ';' ignoreheader 1
