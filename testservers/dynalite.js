// Starts dynalite on a loopback port chosen by the kernel and prints
// "listening PORT" once it accepts connections. It exits when its stdin
// closes, so a test that dies does not leave it running.
'use strict'
const dynalite = require('dynalite')
const server = dynalite({createTableMs: 50, deleteTableMs: 50, updateTableMs: 50})
server.listen(0, '127.0.0.1', () => console.log('listening ' + server.address().port))
process.stdin.on('end', () => process.exit(0))
process.stdin.resume()
