// htm bound to Preact's h: templates in plain JavaScript, nothing to compile.
import { h } from "preact";
import htm from "htm";

export const html = htm.bind(h);
