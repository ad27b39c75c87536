// Starts s3rver on a loopback port, storing objects under the directory
// given as the first argument, and prints "listening PORT" once it accepts
// connections. The port is the second argument, or chosen by the kernel
// when absent (a restart passes the port of the first start). It exits when its stdin
// closes, so a test that dies does not leave it running.
'use strict'
const S3rver = require('s3rver')
const dir = process.argv[2]
const port = Number(process.argv[3] || 0)
if (!dir || !Number.isInteger(port) || port < 0 || port > 65535) {
  console.error('usage: node s3rver.js DIR [PORT]')
  process.exit(2)
}
new S3rver({address: '127.0.0.1', port: port, directory: dir, silent: true})
  .run()
  .then((addr) => console.log('listening ' + addr.port))
  .catch((err) => { console.error(err); process.exit(1) })
process.stdin.on('end', () => process.exit(0))
process.stdin.resume()
