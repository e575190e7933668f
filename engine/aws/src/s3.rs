//! S3: the few object operations deployments need (the toolkit uploads TLS certificates and reads
//! them back): put, get, list by prefix, and creating a bucket on request.

use crate::error::AwsError;
use aws_config::SdkConfig;
use aws_sdk_s3::primitives::{ByteStream, DateTimeFormat};
use serde::Serialize;

/// An S3 client for `sdk`. With an endpoint override (`AWS_ENDPOINT_URL` or
/// [`AwsOptions::endpoint`](crate::config::AwsOptions::endpoint): moto, LocalStack, MinIO)
/// requests use path-style addressing, which needs no per-bucket DNS names.
pub fn client(sdk: &SdkConfig) -> aws_sdk_s3::Client {
    let conf = aws_sdk_s3::config::Builder::from(sdk).force_path_style(sdk.endpoint_url().is_some()).build();
    aws_sdk_s3::Client::from_conf(conf)
}

/// What PutObject returns.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Put {
    /// The bucket.
    pub bucket: String,
    /// The key.
    pub key: String,
    /// The object's ETag.
    pub etag: String,
    /// Bytes written.
    pub size: i64,
}

/// One listed object.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Object {
    /// Its key.
    pub key: String,
    /// Its size in bytes.
    pub size: i64,
    /// Last modified (RFC 3339), or empty.
    pub last_modified: String,
    /// Its ETag.
    pub etag: String,
}

fn url(bucket: &str, key: &str) -> String {
    format!("s3://{bucket}/{key}")
}

/// PutObject.
pub async fn put(
    s3: &aws_sdk_s3::Client,
    bucket: &str,
    key: &str,
    body: Vec<u8>,
    content_type: Option<&str>,
) -> Result<Put, AwsError> {
    let size = body.len() as i64;
    let out = s3
        .put_object()
        .bucket(bucket)
        .key(key)
        .body(ByteStream::from(body))
        .set_content_type(content_type.map(str::to_string))
        .send()
        .await
        .map_err(|e| AwsError::from_sdk(&format!("S3 PutObject {}", url(bucket, key)), e))?;
    Ok(Put {
        bucket: bucket.into(),
        key: key.into(),
        etag: out.e_tag().unwrap_or_default().trim_matches('"').to_string(),
        size,
    })
}

/// GetObject: the whole body.
pub async fn get(s3: &aws_sdk_s3::Client, bucket: &str, key: &str) -> Result<Vec<u8>, AwsError> {
    let what = format!("S3 GetObject {}", url(bucket, key));
    let out = s3.get_object().bucket(bucket).key(key).send().await.map_err(|e| AwsError::from_sdk(&what, e))?;
    let body = out.body.collect().await.map_err(|e| AwsError::Unavailable(format!("{what}: reading the body: {e}")))?;
    Ok(body.into_bytes().to_vec())
}

/// ListObjectsV2 under `prefix` (all pages), in key order.
pub async fn list(s3: &aws_sdk_s3::Client, bucket: &str, prefix: &str) -> Result<Vec<Object>, AwsError> {
    let what = format!("S3 ListObjectsV2 {}", url(bucket, prefix));
    let mut pages = s3.list_objects_v2().bucket(bucket).prefix(prefix).into_paginator().send();
    let mut out = Vec::new();
    while let Some(page) = pages.next().await {
        let page = page.map_err(|e| AwsError::from_sdk(&what, e))?;
        for o in page.contents() {
            out.push(Object {
                key: o.key().unwrap_or_default().to_string(),
                size: o.size().unwrap_or_default(),
                last_modified: o.last_modified().and_then(|t| t.fmt(DateTimeFormat::DateTime).ok()).unwrap_or_default(),
                etag: o.e_tag().unwrap_or_default().trim_matches('"').to_string(),
            });
        }
    }
    Ok(out)
}

/// Create the bucket unless it exists; true if it was created.
pub async fn ensure_bucket(s3: &aws_sdk_s3::Client, bucket: &str, region: &str) -> Result<bool, AwsError> {
    match s3.head_bucket().bucket(bucket).send().await {
        Ok(_) => return Ok(false),
        Err(e) => match AwsError::from_sdk(&format!("S3 HeadBucket {bucket}"), e) {
            AwsError::NotFound(_) => {}
            other => return Err(other),
        },
    }
    let mut create = s3.create_bucket().bucket(bucket);
    // us-east-1 is the one region that refuses an explicit location constraint.
    if region != "us-east-1" {
        use aws_sdk_s3::types::{BucketLocationConstraint, CreateBucketConfiguration};
        let conf = CreateBucketConfiguration::builder().location_constraint(BucketLocationConstraint::from(region));
        create = create.create_bucket_configuration(conf.build());
    }
    match create.send().await {
        Ok(_) => Ok(true),
        Err(e) => match e.as_service_error() {
            // Lost a race with another creator on our own account: it exists, which is the point.
            Some(se) if se.is_bucket_already_owned_by_you() => Ok(false),
            _ => Err(AwsError::from_sdk(&format!("S3 CreateBucket {bucket}"), e)),
        },
    }
}
