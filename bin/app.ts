#!/usr/bin/env node
/**
 * The example CDK app (`cdk.json` runs it): a model registry and a trainer role that may publish the `fraud`
 * model only. `npx cdk synth` needs no AWS account; the cdk-nag AwsSolutions pack runs on every synth.
 */
import { App, Stack, Validations } from 'aws-cdk-lib';
import * as iam from 'aws-cdk-lib/aws-iam';
import { AwsSolutionsChecks } from 'cdk-nag';
import { ModelRegistry } from '../constructs/index.ts';

export function buildApp(app = new App()): { app: App; stack: Stack } {
  const stack = new Stack(app, 'MaapExample', { description: 'maap example: model registry' });
  const registry = new ModelRegistry(stack, 'Registry');
  const trainer = new iam.Role(stack, 'FraudTrainer', {
    assumedBy: new iam.ServicePrincipal('ecs-tasks.amazonaws.com'),
    description: 'Publishes the fraud model to the maap registry',
  });
  registry.grantPublish(trainer, 'fraud');
  Validations.of(app).addPlugins(new AwsSolutionsChecks(app, { verbose: true }));
  return { app, stack };
}

if (process.argv[1]?.endsWith('app.ts')) buildApp().app.synth();
