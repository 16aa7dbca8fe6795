// Module hooks (node:module register) that report every module URL the loader loads, to the port given at initialize.
let port;

export function initialize(data) {
  port = data.port;
}

export async function load(url, context, nextLoad) {
  port.postMessage(url);
  return nextLoad(url, context);
}
