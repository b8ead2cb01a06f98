// JSON schemas shared by the gateway's routes. Names and namespaces are
// checked with the same functions the rest of tteok uses (common/livestream.ts),
// registered as Ajv formats, so the schema and the code cannot disagree.
import { isValidName, isValidNamespace } from '../common/livestream.ts';

export const schemaFormats = {
  'livestream-namespace': isValidNamespace,
  'livestream-name': isValidName,
};

export const namespaceSchema = { type: 'string', format: 'livestream-namespace', maxLength: 63 } as const;
export const nameSchema = { type: 'string', format: 'livestream-name', maxLength: 63 } as const;
/** `:namespace/:name` in a route: one stream. */
export const streamParamsSchema = {
  type: 'object',
  required: ['namespace', 'name'],
  properties: { namespace: namespaceSchema, name: nameSchema },
  additionalProperties: false,
} as const;

/** Every error the gateway returns: `{ statusCode, error, message }`. */
export const errorSchema = {
  type: 'object',
  required: ['statusCode', 'error', 'message'],
  properties: {
    statusCode: { type: 'integer' },
    error: { type: 'string' },
    message: { type: 'string' },
  },
  additionalProperties: false,
} as const;

export const errorResponses = {
  400: errorSchema,
  404: errorSchema,
  500: errorSchema,
} as const;

export const noQuerystring = { type: 'object', properties: {}, additionalProperties: false } as const;
export const noParams = { type: 'object', properties: {}, additionalProperties: false } as const;

/** Non-JSON bodies (HTML, scripts, media, Prometheus text) are declared as strings. */
export const textBody = { type: 'string' } as const;

/** An error Fastify turns into a JSON error response with this status. */
export function httpError(statusCode: number, message: string): Error & { statusCode: number } {
  return Object.assign(new Error(message), { statusCode });
}
