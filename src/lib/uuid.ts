const hexValue = new Int8Array(128).fill(-1);
for (let digit = 0; digit < 10; digit++) hexValue[48 + digit] = digit;
for (let letter = 0; letter < 6; letter++) {
  hexValue[65 + letter] = 10 + letter;
  hexValue[97 + letter] = 10 + letter;
}

/** The value of hex digit `code` (a UTF-16 code unit), or -1 if it is not one. */
function hexDigit(code: number): number {
  return code < 128 ? (hexValue[code] as number) : -1;
}

/**
 * Decodes a uuid in its canonical 36-character form (either case) into its 16
 * bytes at `offset` of `bytes`; returns false, having written part of them at
 * most, when `value` is not one. The check is made on the characters the
 * decoding reads anyway: a regular-expression test of every id first cost
 * bulk-messaging about 1 µs per message.
 */
export function writeUuidBytes(value: string, bytes: Uint8Array, offset: number): boolean {
  if (value.length !== 36) return false;
  let byte = offset;
  for (let char = 0; char < 36; char += 2) {
    if (char === 8 || char === 13 || char === 18 || char === 23) {
      if (value.charCodeAt(char) !== 45 /* - */) return false;
      char++;
    }
    const high = hexDigit(value.charCodeAt(char));
    const low = hexDigit(value.charCodeAt(char + 1));
    // Either one is -1 (every bit set) if it is not a hex digit.
    if ((high | low) < 0) return false;
    bytes[byte++] = (high << 4) | low;
  }
  return true;
}

const scratch = new Uint8Array(16);

/** Whether `value` is a uuid in its canonical 36-character form (either case). */
export function isUuid(value: string): boolean {
  return writeUuidBytes(value, scratch, 0);
}
