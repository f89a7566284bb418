import { Stack, Token, Validations } from 'aws-cdk-lib';
import * as iam from 'aws-cdk-lib/aws-iam';
import type * as kms from 'aws-cdk-lib/aws-kms';
import * as s3 from 'aws-cdk-lib/aws-s3';
import { Construct } from 'constructs';
import { MODEL_NAME_PATTERN } from '../lib/package/names.ts';
import { ACCESS_LOG_BUCKET_DEFAULTS, DEFAULT_PREFIX, REGISTRY_BUCKET_DEFAULTS } from './registry-defaults.ts';

/** The id of the bucket-notifications custom resource that aws-cdk-lib creates once per stack. */
const NOTIFICATIONS_HANDLER_ID = 'BucketNotificationsHandler050a0587b7544547bf325f094a3db834';

/** What reading a model needs: `maap pull`, the predictor's load, `maap ls` (ranged GETs), HEAD. */
const READ_ACTIONS = ['s3:GetObject'];
/** What publishing needs on top: uploads (multipart included) and aborting a failed one. */
const WRITE_ACTIONS = ['s3:PutObject', 's3:AbortMultipartUpload'];

export interface ModelRegistryProps {
  /**
   * An existing bucket to hold the registry. Its configuration is left as it is.
   * @default - a new bucket with maap's secure defaults (see `REGISTRY_BUCKET_DEFAULTS`)
   */
  readonly bucket?: s3.IBucket;
  /**
   * The key prefix under which packages live: `<prefix>/<name>/<version>.maap`. No leading or trailing slash.
   * @default 'models'
   */
  readonly prefix?: string;
  /**
   * A KMS key to encrypt a new bucket with. Grants then include the key.
   * @default - S3-managed encryption (SSE-S3)
   */
  readonly encryptionKey?: kms.IKey;
  /**
   * Where a new bucket writes its server access logs.
   * @default - a dedicated access-log bucket is created
   */
  readonly serverAccessLogsBucket?: s3.IBucket;
}

/**
 * A maap model registry in S3: the same layout as a local folder registry (`<prefix>/<name>/<version>.maap`,
 * `<prefix>/<name>/aliases/<alias>.json`), so `maap push --registry s3://...` works against it. Access is
 * granted per model: a trainer can publish its own model only, a predictor can read its own model only.
 */
export class ModelRegistry extends Construct {
  /** The bucket holding the registry. */
  readonly bucket: s3.IBucket;
  /** The key prefix of the registry inside the bucket. */
  readonly prefix: string;
  /** The registry URI for `maap` (`MAAP_REGISTRY`): `s3://<bucket>/<prefix>`. */
  readonly uri: string;

  constructor(scope: Construct, id: string, props: ModelRegistryProps = {}) {
    super(scope, id);
    const prefix = props.prefix ?? DEFAULT_PREFIX;
    if (!Token.isUnresolved(prefix) && !/^[A-Za-z0-9_.-]+(\/[A-Za-z0-9_.-]+)*$/.test(prefix)) {
      throw new Error(
        `ModelRegistry ${id}: prop "prefix" is "${prefix}"; use path segments of letters, digits, '.', '_' or '-' ` +
          'separated by "/", without a leading or trailing slash (e.g. "models" or "ml/models")',
      );
    }
    if (props.bucket && (props.encryptionKey || props.serverAccessLogsBucket)) {
      throw new Error(
        `ModelRegistry ${id}: props "encryptionKey" and "serverAccessLogsBucket" configure a new bucket; ` +
          'with "bucket" given, configure that bucket yourself or drop those props',
      );
    }
    this.prefix = prefix;
    this.bucket = props.bucket ?? this.createBucket(props);
    this.uri = `s3://${this.bucket.bucketName}/${prefix}`;
  }

  /** The key prefix of one model (or of every model): `<prefix>/<name>/`. */
  modelPrefix(model?: string): string {
    if (model !== undefined) checkModel(model, this.node.id);
    return model === undefined ? `${this.prefix}/` : `${this.prefix}/${model}/`;
  }

  /**
   * Lets `grantee` list, read and pull packages and aliases of `model` (all models when omitted), e.g. a
   * predictor or the deployer.
   */
  grantRead(grantee: iam.IGrantable, model?: string): iam.Grant {
    return this.grant(grantee, model, READ_ACTIONS, ['kms:Decrypt']);
  }

  /**
   * Lets `grantee` publish versions of `model` and move its aliases (`maap push`, `maap alias set`), and read
   * them back; nothing outside that model's prefix. A trainer gets this for its own model.
   */
  grantPublish(grantee: iam.IGrantable, model: string): iam.Grant {
    return this.grant(
      grantee,
      model,
      [...READ_ACTIONS, ...WRITE_ACTIONS],
      ['kms:Decrypt', 'kms:GenerateDataKey'],
    );
  }

  /** Exact actions on the model's keys, listing limited to its prefix, and the key when there is one. */
  private grant(
    grantee: iam.IGrantable,
    model: string | undefined,
    actions: string[],
    keyActions: string[],
  ): iam.Grant {
    const keys = `${this.modelPrefix(model)}*`;
    const grant = iam.Grant.addToPrincipal({
      grantee,
      actions,
      resourceArns: [this.bucket.arnForObjects(keys)],
    });
    grant.principalStatements.push(
      ...(() => {
        const list = new iam.PolicyStatement({
          actions: ['s3:ListBucket'],
          resources: [this.bucket.bucketArn],
          conditions: { StringLike: { 's3:prefix': [keys] } },
        });
        grantee.grantPrincipal.addToPrincipalPolicy(list);
        return [list];
      })(),
    );
    this.bucket.encryptionKey?.grant(grantee, ...keyActions);
    // The one wildcard is the model's own key prefix: its versions and aliases are objects created over time.
    Validations.of(grantee.grantPrincipal as unknown as Construct).acknowledge({
      id: `AwsSolutions::AwsSolutions-IAM5[Resource::${this.arnForFindings()}/${keys}]`,
      reason: `Scoped to the objects of ${model ? `model "${model}"` : 'the model registry'} (${keys}): its versions and aliases are created over time, so their keys cannot be listed in advance.`,
    });
    return grant;
  }

  /** The bucket ARN as cdk-nag prints it in findings: `<LogicalId.Arn>` for a bucket of this stack. */
  private arnForFindings(): string {
    const cfn = this.bucket.node.defaultChild;
    if (cfn instanceof s3.CfnBucket)
      return `<${Stack.of(this).resolve(Stack.of(cfn).getLogicalId(cfn))}.Arn>`;
    return this.bucket.bucketArn;
  }

  private createBucket(props: ModelRegistryProps): s3.IBucket {
    const logs =
      props.serverAccessLogsBucket ?? new s3.Bucket(this, 'AccessLogs', ACCESS_LOG_BUCKET_DEFAULTS);
    if (!props.serverAccessLogsBucket) {
      Validations.of(logs).acknowledge({
        id: 'AwsSolutions-S1',
        reason: 'This is the access-log bucket of the model registry: it does not log itself.',
      });
    }
    const bucket = new s3.Bucket(this, 'Resource', {
      ...REGISTRY_BUCKET_DEFAULTS,
      ...(props.encryptionKey
        ? { encryption: s3.BucketEncryption.KMS, encryptionKey: props.encryptionKey, bucketKeyEnabled: true }
        : {}),
      serverAccessLogsBucket: logs,
      serverAccessLogsPrefix: 'registry/',
    });
    // EventBridge delivery is configured by CDK's one shared custom resource per stack, whose role uses the
    // AWS-managed basic execution policy (logs only).
    const handler = Stack.of(this).node.tryFindChild(NOTIFICATIONS_HANDLER_ID);
    if (handler) {
      Validations.of(handler).acknowledge({
        id: 'AwsSolutions::AwsSolutions-IAM4[Policy::arn:<AWS::Partition>:iam::aws:policy/service-role/AWSLambdaBasicExecutionRole]',
        reason:
          "CDK's bucket-notifications custom resource (it turns on EventBridge delivery): the managed policy grants CloudWatch Logs only.",
      });
    }
    return bucket;
  }
}

function checkModel(model: string, id: string): void {
  if (!Token.isUnresolved(model) && !MODEL_NAME_PATTERN.test(model)) {
    throw new Error(
      `ModelRegistry ${id}: model name "${model}" is invalid; use lowercase letters, digits and dashes, starting with a letter or digit (max 63), e.g. "fraud"`,
    );
  }
}
