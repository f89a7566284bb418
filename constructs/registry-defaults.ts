import { Duration, RemovalPolicy } from 'aws-cdk-lib';
import * as s3 from 'aws-cdk-lib/aws-s3';

/**
 * The registry bucket's secure defaults, in one place: versioned, encrypted, public access blocked, TLS only,
 * kept when the stack is deleted, incomplete multipart uploads aborted (an interrupted `maap push` leaves
 * parts that are invisible but billed), old alias revisions expired, and events to EventBridge (the deployer
 * reacts to new packages and alias moves).
 */
export const REGISTRY_BUCKET_DEFAULTS: s3.BucketProps = {
  versioned: true,
  encryption: s3.BucketEncryption.S3_MANAGED,
  blockPublicAccess: s3.BlockPublicAccess.BLOCK_ALL,
  enforceSSL: true,
  minimumTLSVersion: 1.2,
  objectOwnership: s3.ObjectOwnership.BUCKET_OWNER_ENFORCED,
  removalPolicy: RemovalPolicy.RETAIN,
  eventBridgeEnabled: true,
  lifecycleRules: [
    { id: 'abort-incomplete-uploads', abortIncompleteMultipartUploadAfter: Duration.days(1) },
    { id: 'expire-old-alias-revisions', noncurrentVersionExpiration: Duration.days(90) },
  ],
};

/** The access-log bucket: same protections; it does not log itself. */
export const ACCESS_LOG_BUCKET_DEFAULTS: s3.BucketProps = {
  encryption: s3.BucketEncryption.S3_MANAGED,
  blockPublicAccess: s3.BlockPublicAccess.BLOCK_ALL,
  enforceSSL: true,
  minimumTLSVersion: 1.2,
  objectOwnership: s3.ObjectOwnership.OBJECT_WRITER,
  removalPolicy: RemovalPolicy.RETAIN,
  lifecycleRules: [{ id: 'expire-access-logs', expiration: Duration.days(365) }],
};

/** Where packages live inside the bucket unless told otherwise. */
export const DEFAULT_PREFIX = 'models';
