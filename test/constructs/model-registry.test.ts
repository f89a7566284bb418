import { App, Stack, Validations } from 'aws-cdk-lib';
import { Match, Template } from 'aws-cdk-lib/assertions';
import * as iam from 'aws-cdk-lib/aws-iam';
import * as kms from 'aws-cdk-lib/aws-kms';
import * as s3 from 'aws-cdk-lib/aws-s3';
import { AwsSolutionsChecks } from 'cdk-nag';
import { describe, expect, it } from 'vitest';
import { buildApp } from '../../bin/app.ts';
import { ModelRegistry } from '../../constructs/index.ts';

function stackWithRegistry(props: ConstructorParameters<typeof ModelRegistry>[2] = {}) {
  const app = new App();
  const stack = new Stack(app, 'Test');
  const registry = new ModelRegistry(stack, 'Registry', props);
  return { app, stack, registry };
}

const role = (stack: Stack, id: string) =>
  new iam.Role(stack, id, { assumedBy: new iam.ServicePrincipal('lambda.amazonaws.com') });

describe('ModelRegistry', () => {
  it('creates a versioned, encrypted bucket with public access blocked', () => {
    const { stack } = stackWithRegistry();
    Template.fromStack(stack).hasResourceProperties('AWS::S3::Bucket', {
      VersioningConfiguration: { Status: 'Enabled' },
      BucketEncryption: {
        ServerSideEncryptionConfiguration: [{ ServerSideEncryptionByDefault: { SSEAlgorithm: 'AES256' } }],
      },
      PublicAccessBlockConfiguration: {
        BlockPublicAcls: true,
        BlockPublicPolicy: true,
        IgnorePublicAcls: true,
        RestrictPublicBuckets: true,
      },
      LoggingConfiguration: { DestinationBucketName: Match.anyValue(), LogFilePrefix: 'registry/' },
    });
  });

  it('keeps the bucket when the stack is deleted', () => {
    const { stack } = stackWithRegistry();
    Template.fromStack(stack).hasResource('AWS::S3::Bucket', {
      DeletionPolicy: 'Retain',
      UpdateReplacePolicy: 'Retain',
    });
  });

  it('enforces TLS in the bucket policy', () => {
    const { stack } = stackWithRegistry();
    Template.fromStack(stack).hasResourceProperties('AWS::S3::BucketPolicy', {
      PolicyDocument: {
        Statement: Match.arrayWith([
          Match.objectLike({
            Effect: 'Deny',
            Action: 's3:*',
            Condition: { Bool: { 'aws:SecureTransport': 'false' } },
          }),
        ]),
      },
    });
  });

  it('aborts incomplete multipart uploads (an interrupted push leaves no billed parts)', () => {
    const { stack } = stackWithRegistry();
    Template.fromStack(stack).hasResourceProperties('AWS::S3::Bucket', {
      LifecycleConfiguration: {
        Rules: Match.arrayWith([
          Match.objectLike({ AbortIncompleteMultipartUpload: { DaysAfterInitiation: 1 }, Status: 'Enabled' }),
        ]),
      },
    });
  });

  it('sends object events to EventBridge (new packages, alias moves)', () => {
    const { stack } = stackWithRegistry();
    Template.fromStack(stack).hasResourceProperties('Custom::S3BucketNotifications', {
      NotificationConfiguration: { EventBridgeConfiguration: {} },
    });
  });

  it('encrypts with a customer key when given one, and grants include the key', () => {
    const app = new App();
    const stack = new Stack(app, 'Test');
    const key = new kms.Key(stack, 'Key', { enableKeyRotation: true });
    const registry = new ModelRegistry(stack, 'Registry', { encryptionKey: key });
    registry.grantRead(role(stack, 'Predictor'), 'fraud');
    const template = Template.fromStack(stack);
    template.hasResourceProperties('AWS::S3::Bucket', {
      BucketEncryption: {
        ServerSideEncryptionConfiguration: [
          Match.objectLike({ ServerSideEncryptionByDefault: { SSEAlgorithm: 'aws:kms' } }),
        ],
      },
    });
    template.hasResourceProperties('AWS::IAM::Policy', {
      PolicyDocument: {
        Statement: Match.arrayWith([Match.objectLike({ Action: 'kms:Decrypt', Effect: 'Allow' })]),
      },
    });
  });

  it('exposes the registry URI maap reads (s3://bucket/prefix)', () => {
    const { stack, registry } = stackWithRegistry({ prefix: 'ml/models' });
    const resolved = JSON.stringify(stack.resolve(registry.uri));
    expect(resolved).toMatch(
      /^\{"Fn::Join":\["",\["s3:\/\/",\{"Ref":"Registry[0-9A-F]{8}"\},"\/ml\/models"\]\]\}$/,
    );
  });

  it('grantRead scopes reads and listing to one model prefix', () => {
    const { stack, registry } = stackWithRegistry();
    registry.grantRead(role(stack, 'Predictor'), 'fraud');
    Template.fromStack(stack).hasResourceProperties('AWS::IAM::Policy', {
      PolicyDocument: {
        Statement: Match.arrayWith([
          Match.objectLike({
            Action: 's3:GetObject',
            Resource: { 'Fn::Join': ['', [Match.anyValue(), '/models/fraud/*']] },
          }),
          Match.objectLike({
            Action: 's3:ListBucket',
            Condition: { StringLike: { 's3:prefix': ['models/fraud/*'] } },
          }),
        ]),
      },
    });
  });

  it('grantPublish lets a trainer write its own model only', () => {
    const { stack, registry } = stackWithRegistry();
    registry.grantPublish(role(stack, 'Trainer'), 'fraud');
    const policies = Template.fromStack(stack).findResources('AWS::IAM::Policy');
    const statements = Object.values(policies).flatMap((p) => p.Properties.PolicyDocument.Statement);
    const writes = statements.filter((s) => [s.Action].flat().includes('s3:PutObject'));
    expect(writes).toHaveLength(1);
    expect(writes[0].Action).toEqual(['s3:GetObject', 's3:PutObject', 's3:AbortMultipartUpload']);
    expect(JSON.stringify(writes[0].Resource)).toContain('/models/fraud/*');
    expect(JSON.stringify(statements)).not.toMatch(/"s3:\*"|"s3:PutObject\*"|\/models\/\*"/);
  });

  it('refuses a bad prefix at synth time, naming the prop, the value and the fix', () => {
    expect(() => stackWithRegistry({ prefix: '/models/' })).toThrow(
      /prop "prefix" is "\/models\/"; use path segments/,
    );
  });

  it('refuses a bad model name in a grant', () => {
    const { stack, registry } = stackWithRegistry();
    expect(() => registry.grantRead(role(stack, 'R'), 'Fraud_Model')).toThrow(
      /model name "Fraud_Model" is invalid/,
    );
  });

  it('refuses new-bucket props together with an existing bucket', () => {
    const app = new App();
    const stack = new Stack(app, 'Test');
    const bucket = s3.Bucket.fromBucketName(stack, 'Existing', 'my-models');
    const key = new kms.Key(stack, 'Key', { enableKeyRotation: true });
    expect(() => new ModelRegistry(stack, 'Registry', { bucket, encryptionKey: key })).toThrow(
      /configure a new bucket/,
    );
  });
});

describe('cdk-nag AwsSolutions', () => {
  it('the example app synthesizes with no unacknowledged AwsSolutions findings', () => {
    const { app } = buildApp(new App());
    expect(() => app.synth()).not.toThrow();
  });

  it('the check is live: an unprotected bucket beside the registry fails validation', () => {
    const app = new App();
    const stack = new Stack(app, 'Bad');
    new ModelRegistry(stack, 'Registry');
    new s3.Bucket(stack, 'Unsafe');
    Validations.of(app).addPlugins(new AwsSolutionsChecks(app));
    expect(() => app.synth()).toThrow(/S3 Bucket has server access logs disabled/);
  });
});
