// Starts kinesalite on a loopback port chosen by the kernel and prints
// "listening PORT" once it accepts connections. It exits when its stdin
// closes, so a test that dies does not leave it running.
'use strict'
const kinesalite = require('kinesalite')
const server = kinesalite({createStreamMs: 50, deleteStreamMs: 50, updateStreamMs: 50, shardLimit: 100})
server.listen(0, '127.0.0.1', () => console.log('listening ' + server.address().port))
process.stdin.on('end', () => process.exit(0))
process.stdin.resume()
