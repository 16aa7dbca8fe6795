/**
 * One-dimensional arrays in PostgreSQL's binary wire format (what `array_send`
 * writes and `array_recv` reads), for bind parameters. The pg driver sends a
 * Buffer parameter in binary format, so `$1::uuid[]` bound to `uuidArray(ids)`
 * reaches PostgreSQL without being printed and parsed as text.
 *
 * Why not text: PostgreSQL parsed a text `uuid[]` at about 2 µs per element on
 * this project's bench machine and reads the binary one at about 0.4 µs, and
 * bulk-messaging binds about five ids per message. pg sends a Buffer as is
 * but has no encoder for arrays, and pg-copy-streams-binary encodes rows for
 * COPY, not bind parameters (and has no uuid), so the format is written here:
 * a header, then a length and the bytes of each element.
 *
 * Layout: int32 dimensions (1), int32 has-nulls flag, uint32 element type oid,
 * int32 length and int32 lower bound (1) of the one dimension; then per element
 * int32 byte length (-1 for NULL) and the element's bytes, all big-endian.
 */

const uuidOid = 2950;
const textOid = 25;
const timestamptzOid = 1184;
const headerBytes = 20;

function writeHeader(buffer: Buffer, elementOid: number, length: number, hasNulls: boolean): void {
  buffer.writeInt32BE(1, 0);
  buffer.writeInt32BE(hasNulls ? 1 : 0, 4);
  buffer.writeUInt32BE(elementOid, 8);
  buffer.writeInt32BE(length, 12);
  buffer.writeInt32BE(1, 16);
}

const hexValue = new Int8Array(128).fill(-1);
for (let digit = 0; digit < 10; digit++) hexValue[48 + digit] = digit;
for (let letter = 0; letter < 6; letter++) {
  hexValue[65 + letter] = 10 + letter;
  hexValue[97 + letter] = 10 + letter;
}
const uuidPattern = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

/** A `uuid[]` parameter; null elements become NULL. Throws on a string that is not a uuid. */
export function uuidArray(ids: readonly (string | null)[]): Buffer {
  const buffer = Buffer.allocUnsafe(headerBytes + ids.length * 20);
  writeHeader(buffer, uuidOid, ids.length, ids.includes(null));
  let offset = headerBytes;
  for (const id of ids) {
    if (id === null) {
      buffer.writeInt32BE(-1, offset);
      offset += 4;
      continue;
    }
    if (id.length !== 36 || !uuidPattern.test(id)) throw new TypeError(`uuidArray: ${JSON.stringify(id)} is not a uuid`);
    buffer.writeInt32BE(16, offset);
    offset += 4;
    for (let char = 0; char < 36; char += 2) {
      if (char === 8 || char === 13 || char === 18 || char === 23) char++;
      buffer[offset++] = ((hexValue[id.charCodeAt(char)] as number) << 4) | (hexValue[id.charCodeAt(char + 1)] as number);
    }
  }
  return buffer.subarray(0, offset);
}

/** A `text[]` parameter, UTF-8 encoded; null elements become NULL. */
export function textArray(values: readonly (string | null)[]): Buffer {
  let size = headerBytes;
  const lengths = values.map((value) => (value === null ? -1 : Buffer.byteLength(value)));
  for (const length of lengths) size += 4 + Math.max(0, length);
  const buffer = Buffer.allocUnsafe(size);
  writeHeader(buffer, textOid, values.length, lengths.includes(-1));
  let offset = headerBytes;
  values.forEach((value, index) => {
    const length = lengths[index] as number;
    buffer.writeInt32BE(length, offset);
    offset += 4;
    if (value !== null) offset += buffer.write(value, offset, length, "utf8");
  });
  return buffer;
}

/** Milliseconds from the Unix epoch to PostgreSQL's (2000-01-01T00:00:00Z). */
const postgresEpochMs = 946_684_800_000;

/** A `timestamptz[]` parameter from epoch milliseconds; null elements become NULL. */
export function timestamptzArray(epochMs: readonly (number | null)[]): Buffer {
  const buffer = Buffer.allocUnsafe(headerBytes + epochMs.length * 12);
  writeHeader(buffer, timestamptzOid, epochMs.length, epochMs.includes(null));
  let offset = headerBytes;
  for (const ms of epochMs) {
    if (ms === null) {
      buffer.writeInt32BE(-1, offset);
      offset += 4;
      continue;
    }
    if (!Number.isInteger(ms)) throw new TypeError(`timestamptzArray: ${ms} is not a whole number of milliseconds`);
    buffer.writeInt32BE(8, offset);
    // Microseconds since 2000-01-01, as PostgreSQL stores timestamps.
    buffer.writeBigInt64BE(BigInt(ms - postgresEpochMs) * 1000n, offset + 4);
    offset += 12;
  }
  return buffer.subarray(0, offset);
}
