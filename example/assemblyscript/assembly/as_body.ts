// as_body: reads request and response bodies; upper-cases the response body.
// Built with @solo-io/proxy-runtime 0.1.8 (proxy-wasm ABI 0.2.0) and assemblyscript 0.14.9.
//
// Root ids: "as_body" (recommended) and "" (also registered).
// Configuration: any short non-empty string, e.g. "{}" (the value is only logged).
//
// on_request_body / on_response_body: log body_size and end_of_stream on every call. While
//   end_of_stream is false they return StopIterationAndBuffer (1) so the host keeps buffering and the
//   next call sees the whole body so far; at end_of_stream they read the whole buffered body
//   (proxy_get_buffer_bytes(0|1, 0, body_size)) and log it, then Continue.
// At response end_of_stream the body is replaced with an upper-cased copy (ASCII a-z only, so the
//   length is unchanged): proxy_set_buffer_bytes(1, 0, body_size, copy, len).
//
// SDK note: @solo-io/proxy-runtime 0.1.8 has no working set_buffer_bytes wrapper (its
// `proxy_set_buffer_status` declaration is bound to env.proxy_get_buffer_status with a wrong
// signature), so this plugin declares env.proxy_set_buffer_bytes itself (ABI 0.2.0 signature).
export * from "@solo-io/proxy-runtime/proxy";
import {
  RootContext, Context, registerRootContext, FilterDataStatusValues,
  log, LogLevelValues,
} from "@solo-io/proxy-runtime";
import { get_buffer_bytes, BufferTypeValues } from "@solo-io/proxy-runtime/runtime";

// @ts-ignore: decorator
@external("env", "proxy_set_buffer_bytes")
declare function proxy_set_buffer_bytes(buffer_type: i32, start: u32, length: u32, data: usize, size: usize): u32;

const NAME = "as_body";

function info(msg: string): void {
  log(LogLevelValues.info, NAME + ": " + msg);
}

function upperAscii(data: ArrayBuffer): ArrayBuffer {
  const out = data.slice(0);
  const bytes = Uint8Array.wrap(out);
  for (let i = 0; i < bytes.length; i++) {
    const c = bytes[i];
    if (c >= 0x61 && c <= 0x7a) {
      bytes[i] = c - 0x20;
    }
  }
  return out;
}

class AsBodyRoot extends RootContext {
  createContext(context_id: u32): Context {
    return new AsBody(context_id, this);
  }

  onConfigure(configuration_size: u32): bool {
    const ok = super.onConfigure(configuration_size);
    info("configured (configuration_size " + configuration_size.toString() +
      ", configuration '" + this.getConfiguration() + "')");
    return ok;
  }
}

class AsBody extends Context {
  constructor(context_id: u32, root_context: AsBodyRoot) {
    super(context_id, root_context);
  }

  onRequestBody(body_size: usize, end_of_stream: bool): FilterDataStatusValues {
    info("onRequestBody(context " + this.context_id.toString() + ", body_size " +
      body_size.toString() + ", end_of_stream " + end_of_stream.toString() + ")");
    if (!end_of_stream) {
      info("request body not complete: buffering");
      return FilterDataStatusValues.StopIterationAndBuffer;
    }
    const body = get_buffer_bytes(BufferTypeValues.HttpRequestBody, 0, body_size as u32);
    info("request body (" + body.byteLength.toString() + " bytes): " + String.UTF8.decode(body));
    return FilterDataStatusValues.Continue;
  }

  onResponseBody(body_size: usize, end_of_stream: bool): FilterDataStatusValues {
    info("onResponseBody(context " + this.context_id.toString() + ", body_size " +
      body_size.toString() + ", end_of_stream " + end_of_stream.toString() + ")");
    if (!end_of_stream) {
      info("response body not complete: buffering");
      return FilterDataStatusValues.StopIterationAndBuffer;
    }
    const body = get_buffer_bytes(BufferTypeValues.HttpResponseBody, 0, body_size as u32);
    info("response body (" + body.byteLength.toString() + " bytes): " + String.UTF8.decode(body));

    const upper = upperAscii(body);
    const result = proxy_set_buffer_bytes(BufferTypeValues.HttpResponseBody, 0, body_size as u32,
      changetype<usize>(upper), upper.byteLength);
    info("replaced response body with upper-cased copy (" + upper.byteLength.toString() +
      " bytes), result " + result.toString() + ": " + String.UTF8.decode(upper));
    return FilterDataStatusValues.Continue;
  }
}

registerRootContext((context_id: u32): RootContext => { return new AsBodyRoot(context_id); }, NAME);
registerRootContext((context_id: u32): RootContext => { return new AsBodyRoot(context_id); }, "");
