// The lab's webhook receiver: appends every POST body (one JSON event) as a line to the file in argv[3], answers 200.
// Runs in the lab's internet namespace beside the server; plain JS, so it starts without tsx.
import { appendFileSync } from 'node:fs';
import { createServer } from 'node:http';

const [host, port] = process.argv[2].split(':');
const file = process.argv[3];
createServer((req, res) => {
  const chunks = [];
  req.on('data', (c) => chunks.push(c));
  req.on('end', () => {
    appendFileSync(file, Buffer.concat(chunks).toString('utf8').replace(/\n/g, ' ') + '\n');
    res.writeHead(200).end('ok');
  });
}).listen(Number(port), host, () => console.log('webhook sink listening'));
