'use strict'
// Every test file may cover any file under lib/: tap then measures coverage of lib/ only.
module.exports = () => ['lib/**/*.ts']
