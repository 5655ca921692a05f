'use strict';
// Node, CommonJS: the wasm-bindgen `nodejs` build, instantiated synchronously on require.
// `init` and `initSync` exist only so that code written for the browser build runs unchanged.
const m = require('./metergate.js');

m.initSync = function initSync() {};
m.default = async function init() {};
module.exports = m;
