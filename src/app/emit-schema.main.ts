import { writeFile } from 'node:fs/promises';
import { SCHEMA_FILE, buildGatewaySchema, printGatewaySchema } from './schema.js';

// `npm run schema`: re-emit the checked-in SDL after changing a type-graphql class.
await writeFile(SCHEMA_FILE, printGatewaySchema(await buildGatewaySchema()));
console.log(`wrote ${SCHEMA_FILE}`);
