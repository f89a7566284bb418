/**
 * Lambda events shaped exactly as AWS delivers them (field for field as in the AWS documentation's samples):
 * a Lambda Function URL request, an API Gateway HTTP API request (payload format 2.0, `$default` stage) and an
 * API Gateway REST API proxy request (payload format 1.0, stage `prod`, `{proxy+}` resource). Plus a Lambda
 * context. Everything is plain JSON except the context's `getRemainingTimeInMillis`.
 */
export type EventKind = 'function-url' | 'http-api-v2' | 'rest-api-v1';
export const EVENT_KINDS: readonly EventKind[] = ['function-url', 'http-api-v2', 'rest-api-v1'];

export interface HttpCall {
  readonly method: 'GET' | 'POST';
  readonly path: string;
  /** JSON body (sent as a string, as AWS does). */
  readonly body?: unknown;
  /** Extra headers (lower-case names). */
  readonly headers?: Record<string, string>;
}

const ACCOUNT = '123456789012';
const TIME = '12/Mar/2026:19:03:58 +0000';
const EPOCH = 1773342238390;
const SOURCE_IP = '198.51.100.7';
const USER_AGENT = 'maap-test/1.0';

function headersOf(call: HttpCall, host: string): Record<string, string> {
  return {
    accept: 'application/json',
    host,
    'user-agent': USER_AGENT,
    'x-amzn-trace-id': 'Root=1-67891233-abcdef012345678912345678',
    'x-forwarded-for': SOURCE_IP,
    'x-forwarded-port': '443',
    'x-forwarded-proto': 'https',
    ...(call.body !== undefined ? { 'content-type': 'application/json' } : {}),
    ...call.headers,
  };
}

const bodyOf = (call: HttpCall): string | null =>
  call.body === undefined ? null : JSON.stringify(call.body);

/** A Lambda Function URL invocation (IAM auth). */
export function functionUrlEvent(call: HttpCall): Record<string, unknown> {
  const urlId = 'a1b2c3d4e5f6g7h8i9j0klmnopqrstuv';
  const domainName = `${urlId}.lambda-url.eu-west-1.on.aws`;
  return {
    version: '2.0',
    routeKey: '$default',
    rawPath: call.path,
    rawQueryString: '',
    headers: headersOf(call, domainName),
    requestContext: {
      accountId: ACCOUNT,
      apiId: urlId,
      authorizer: {
        iam: {
          accessKey: 'AKIAIOSFODNN7EXAMPLE',
          accountId: ACCOUNT,
          callerId: 'AIDACKCEVSQ6C2EXAMPLE',
          cognitoIdentity: null,
          principalOrgId: null,
          userArn: `arn:aws:iam::${ACCOUNT}:user/maap-client`,
          userId: 'AIDACKCEVSQ6C2EXAMPLE',
        },
      },
      domainName,
      domainPrefix: urlId,
      http: {
        method: call.method,
        path: call.path,
        protocol: 'HTTP/1.1',
        sourceIp: SOURCE_IP,
        userAgent: USER_AGENT,
      },
      requestId: 'b7e3c1a0-58d2-4f0e-9a51-6f1c2d3e4f50',
      routeKey: '$default',
      stage: '$default',
      time: TIME,
      timeEpoch: EPOCH,
    },
    body: bodyOf(call),
    isBase64Encoded: false,
  };
}

/** An API Gateway HTTP API invocation, payload format 2.0, `$default` route and stage. */
export function httpApiEvent(call: HttpCall): Record<string, unknown> {
  const apiId = 'r3pmxmplak';
  const domainName = `${apiId}.execute-api.eu-west-1.amazonaws.com`;
  return {
    version: '2.0',
    routeKey: '$default',
    rawPath: call.path,
    rawQueryString: '',
    headers: { ...headersOf(call, domainName), 'content-length': String(bodyOf(call)?.length ?? 0) },
    requestContext: {
      accountId: ACCOUNT,
      apiId,
      domainName,
      domainPrefix: apiId,
      http: {
        method: call.method,
        path: call.path,
        protocol: 'HTTP/1.1',
        sourceIp: SOURCE_IP,
        userAgent: USER_AGENT,
      },
      requestId: 'JKJaXmPLvHcESHA=',
      routeKey: '$default',
      stage: '$default',
      time: TIME,
      timeEpoch: EPOCH,
    },
    body: bodyOf(call),
    isBase64Encoded: false,
  };
}

/** An API Gateway REST API proxy invocation, payload format 1.0, resource `/{proxy+}`, stage `prod`. */
export function restApiEvent(call: HttpCall): Record<string, unknown> {
  const apiId = '1234567890';
  const domainName = `${apiId}.execute-api.eu-west-1.amazonaws.com`;
  const headers = headersOf(call, domainName);
  return {
    resource: '/{proxy+}',
    path: call.path,
    httpMethod: call.method,
    headers,
    multiValueHeaders: Object.fromEntries(Object.entries(headers).map(([k, v]) => [k, [v]])),
    queryStringParameters: null,
    multiValueQueryStringParameters: null,
    pathParameters: { proxy: call.path.replace(/^\//, '') },
    stageVariables: null,
    requestContext: {
      accountId: ACCOUNT,
      apiId,
      domainName,
      domainPrefix: apiId,
      extendedRequestId: 'BQGojGbvoAMFx3Q=',
      httpMethod: call.method,
      identity: {
        accessKey: null,
        accountId: null,
        caller: null,
        cognitoAuthenticationProvider: null,
        cognitoAuthenticationType: null,
        cognitoIdentityId: null,
        cognitoIdentityPoolId: null,
        principalOrgId: null,
        sourceIp: SOURCE_IP,
        user: null,
        userAgent: USER_AGENT,
        userArn: null,
        clientCert: null,
      },
      path: `/prod${call.path}`,
      protocol: 'HTTP/1.1',
      requestId: 'c6af9ac6-7b61-11e6-9a41-93e8deadbeef',
      requestTime: TIME,
      requestTimeEpoch: EPOCH,
      resourceId: 'xmpl8h',
      resourcePath: '/{proxy+}',
      stage: 'prod',
    },
    body: bodyOf(call),
    isBase64Encoded: false,
  };
}

export function lambdaEvent(kind: EventKind, call: HttpCall): Record<string, unknown> {
  if (kind === 'function-url') return functionUrlEvent(call);
  if (kind === 'http-api-v2') return httpApiEvent(call);
  return restApiEvent(call);
}

/** The context object Lambda passes with each invocation. */
export function lambdaContext(requestId = '8f507cfc-2ac5-4d4e-9a3b-0d1c2e3f4a5b') {
  const deadline = Date.now() + 30_000;
  return {
    callbackWaitsForEmptyEventLoop: true,
    functionName: 'maap-predictor',
    functionVersion: '$LATEST',
    invokedFunctionArn: `arn:aws:lambda:eu-west-1:${ACCOUNT}:function:maap-predictor:live`,
    memoryLimitInMB: '1024',
    awsRequestId: requestId,
    logGroupName: '/aws/lambda/maap-predictor',
    logStreamName: '2026/03/12/[$LATEST]0123456789abcdef0123456789abcdef',
    getRemainingTimeInMillis: () => Math.max(0, deadline - Date.now()),
  };
}
