/* leading */ CoPy T -- a comment
  FrOm 's3://b/k' /* inline */ Iam_Role 'arn:aws:iam::123456789012:role/copy' ;
