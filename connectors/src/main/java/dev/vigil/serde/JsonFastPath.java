package dev.vigil.serde;

import java.nio.charset.StandardCharsets;
import java.util.List;

/**
 * The JSON parser's fast path: reads a record of the shape producers write (ASCII strings without
 * escapes, plain numbers, flat {@code values}, extra fields that are scalars) straight from its
 * bytes, without a tokenizer, a String per field name or a text buffer per number. On anything else
 * it gives up ({@link #read} returns false) and {@link TelemetryParser} reads the record with
 * Jackson, whose checks and dead-letter reasons are the contract's. What it accepts it reads to the
 * same event or the same rejection, bit for bit (JsonFastPathTest compares the two on generated and
 * hostile records).
 *
 * <p>It gives up on: a record that does not start with an opening brace after whitespace, a string
 * with a backslash, a control character or a byte above 0x7F, a nested object or array other than
 * {@code values}, a repeated top-level field or feature, {@code ts} other than an integer or a
 * string, {@code seq} other than a non-negative integer or null, a feature that is not a finite
 * number, a number outside JSON's grammar, with more than 18 digits or more than 4 exponent digits,
 * and trailing content.
 *
 * <p>Not thread-safe: one per parser.
 */
final class JsonFastPath {

    /**
     * The longest string read here; a longer one goes to Jackson, whose limits on names and strings
     * (50,000 and 20,000,000 characters) are then the ones that apply.
     */
    private static final int MAX_STRING_BYTES = 10_000;

    /** The contract's top-level fields, by the number {@link #contractField} gives each. */
    private static final byte[][] CONTRACT_FIELDS = {
        ascii("device_id"), ascii("ts"), ascii("seq"), ascii("values")
    };

    /** 10^0 .. 10^18. */
    private static final long[] POWERS_OF_TEN_LONG = new long[19];

    /** 10^0 .. 10^22: every one exactly a double. */
    private static final double[] POWERS_OF_TEN = new double[23];

    static {
        double p = 1;
        for (int i = 0; i < POWERS_OF_TEN.length; i++) {
            POWERS_OF_TEN[i] = p;
            p *= 10;
        }
        long q = 1;
        for (int i = 0; i < POWERS_OF_TEN_LONG.length; i++) {
            POWERS_OF_TEN_LONG[i] = q;
            q *= 10;
        }
    }

    private final String[] features;
    private final byte[][] names;

    /** Open addressing by the hash of a name's bytes: feature index + 1, 0 for an empty slot. */
    private final int[] slots;

    private final boolean[] seen;

    // The record being read and the position in it.
    private byte[] b;
    private int pos;

    // The last string read: its bytes are b[strStart, strEnd).
    private int strStart;
    private int strEnd;

    // The last number read: (-1)^negative * mantissa * 10^exponent, an integer token when isInt.
    private boolean negative;
    private boolean isInt;
    private long mantissa;
    private int exponent;
    private int numStart;

    JsonFastPath(List<String> features) {
        this.features = features.toArray(new String[0]);
        this.names = new byte[this.features.length][];
        this.seen = new boolean[this.features.length];
        int size = Integer.highestOneBit(Math.max(8, this.features.length) * 4);
        this.slots = new int[size];
        for (int i = 0; i < this.features.length; i++) {
            names[i] = this.features[i].getBytes(StandardCharsets.UTF_8);
            int slot = hash(names[i], 0, names[i].length) & (size - 1);
            while (slots[slot] != 0) {
                slot = (slot + 1) & (size - 1);
            }
            slots[slot] = i + 1;
        }
    }

    /**
     * Reads {@code raw} (not empty) into {@code f}, or returns false when the record is not of the
     * shape this path reads; {@code f} then holds nothing to use.
     */
    boolean read(byte[] raw, TelemetryParser.Fields f) {
        b = raw;
        pos = 0;
        f.clear();
        skipWhitespace();
        if (!take('{')) {
            return false;
        }
        int present = 0; // a bit per contract field read: a repeated one goes to Jackson
        skipWhitespace();
        if (!take('}')) {
            while (true) {
                if (!string() || !colon()) {
                    return false;
                }
                int field = contractField(strStart, strEnd);
                if (field >= 0) {
                    if ((present & 1 << field) != 0) {
                        return false;
                    }
                    present |= 1 << field;
                }
                boolean ok =
                        switch (field) {
                            case 0 -> deviceId(f);
                            case 1 -> ts(f);
                            case 2 -> seq(f);
                            case 3 -> values(f);
                            default -> skipScalar();
                        };
                if (!ok || !endOfMember()) {
                    return false;
                }
                if (b[pos - 1] == '}') {
                    break;
                }
            }
        }
        skipWhitespace();
        return pos == b.length;
    }

    private boolean deviceId(TelemetryParser.Fields f) {
        if (!at('"') || !string()) {
            return false;
        }
        int length = strEnd - strStart;
        boolean blank = true;
        for (int i = strStart; i < strEnd && blank; i++) {
            blank = b[i] == ' ';
        }
        if (blank) {
            f.badDeviceId = true;
        } else if (length > TelemetryParser.MAX_DEVICE_ID_LENGTH) {
            f.deviceIdTooLong = length;
        } else {
            f.deviceId = new String(b, strStart, length, StandardCharsets.ISO_8859_1);
        }
        return true;
    }

    private boolean ts(TelemetryParser.Fields f) {
        f.hasTs = true;
        if (at('"')) {
            if (!string()) {
                return false;
            }
            String text = new String(b, strStart, strEnd - strStart, StandardCharsets.ISO_8859_1);
            Long parsed = TelemetryParser.parseInstant(text);
            if (parsed == null) {
                f.badTs = text;
            } else {
                f.ts = parsed;
            }
            return true;
        }
        if (!number() || !isInt) {
            return false;
        }
        f.ts = negative ? -mantissa : mantissa;
        return true;
    }

    private boolean seq(TelemetryParser.Fields f) {
        if (at('n')) {
            return literal("null");
        }
        if (!number() || !isInt || (negative && mantissa != 0)) {
            return false;
        }
        f.seq = mantissa;
        return true;
    }

    private boolean values(TelemetryParser.Fields f) {
        if (!take('{')) {
            return false;
        }
        float[] out = new float[features.length];
        java.util.Arrays.fill(seen, false);
        skipWhitespace();
        int next = 0; // producers write the features in one order, often the card's: try it first
        if (!take('}')) {
            while (true) {
                if (!string() || !colon()) {
                    return false;
                }
                int i =
                        next < names.length && is(strStart, strEnd, names[next])
                                ? next
                                : feature(strStart, strEnd);
                next = i + 1;
                if (i < 0) {
                    if (!skipScalar()) {
                        return false;
                    }
                } else {
                    if (seen[i] || !number()) {
                        return false;
                    }
                    float v = (float) toDouble();
                    if (!Float.isFinite(v)) {
                        return false;
                    }
                    seen[i] = true;
                    out[i] = v;
                }
                if (!endOfMember()) {
                    return false;
                }
                if (b[pos - 1] == '}') {
                    break;
                }
            }
        }
        f.values = out;
        for (int i = 0; i < seen.length; i++) {
            if (!seen[i]) {
                f.valuesRejection =
                        new TelemetryParser.Rejection(
                                DeadLetterReason.MISSING_FEATURE, features[i]);
                break;
            }
        }
        return true;
    }

    /** The number just read, as Jackson's {@code getDoubleValue()} gives it. */
    private double toDouble() {
        if (isInt) {
            return (double) (negative ? -mantissa : mantissa); // "-0" is the integer 0
        }
        double d;
        if (mantissa == 0) {
            d = 0;
        } else if (mantissa <= 1L << 53 && exponent >= -22 && exponent <= 22) {
            // Both operands exact, so the one rounding is the correct one (Clinger's fast path).
            d =
                    exponent < 0
                            ? mantissa / POWERS_OF_TEN[-exponent]
                            : mantissa * POWERS_OF_TEN[exponent];
        } else {
            // Rare (more than 15 digits, or a large exponent): the text, sign included.
            return Double.parseDouble(
                    new String(b, numStart, pos - numStart, StandardCharsets.ISO_8859_1));
        }
        return negative ? -d : d;
    }

    /** A JSON number at {@code pos}, at most 18 digits, read into the number fields. */
    private boolean number() {
        byte[] bytes = b;
        int n = bytes.length;
        int p = pos;
        numStart = p;
        boolean minus = p < n && bytes[p] == '-';
        if (minus) {
            p++;
        }
        if (p >= n) {
            return false;
        }
        long m = 0;
        int digits = 0;
        int exp = 0;
        int c = bytes[p];
        if (c == '0') {
            p++;
            if (p < n && isDigit(bytes[p])) {
                return false; // a leading zero
            }
        } else if (c >= '1' && c <= '9') {
            int first = p;
            m = readDigits(bytes, p);
            p = digitsEnd;
            digits = p - first;
        } else {
            return false;
        }
        if (digits > 18) {
            return false;
        }
        boolean integer = true;
        if (p < n && bytes[p] == '.') {
            integer = false;
            int first = ++p;
            long fraction = readDigits(bytes, p);
            p = digitsEnd;
            int count = p - first;
            if (count == 0 || digits + count > 18) {
                return false;
            }
            m = m * POWERS_OF_TEN_LONG[count] + fraction;
            digits += count;
            exp = -count;
        }
        if (p < n && (bytes[p] == 'e' || bytes[p] == 'E')) {
            integer = false;
            p++;
            boolean negativeExp = p < n && bytes[p] == '-';
            if (p < n && (bytes[p] == '-' || bytes[p] == '+')) {
                p++;
            }
            int first = p;
            int e = 0;
            while (p < n && isDigit(c = bytes[p])) {
                if (p - first >= 4) {
                    return false;
                }
                e = e * 10 + (c - '0');
                p++;
            }
            if (p == first) {
                return false;
            }
            exp += negativeExp ? -e : e;
        }
        pos = p;
        negative = minus;
        isInt = integer;
        mantissa = m;
        exponent = exp;
        return true;
    }

    /** Where the last {@link #readDigits} call stopped. */
    private int digitsEnd;

    /**
     * The decimal digits from {@code p} as a number (wrapped, past 18 of them: the caller counts
     * and gives up), two at a time so that the multiplications do not wait on each other as long.
     */
    private long readDigits(byte[] bytes, int p) {
        int n = bytes.length;
        long m = 0;
        while (p + 1 < n && isDigit(bytes[p]) && isDigit(bytes[p + 1])) {
            m = m * 100 + ((bytes[p] - '0') * 10 + (bytes[p + 1] - '0'));
            p += 2;
        }
        if (p < n && isDigit(bytes[p])) {
            m = m * 10 + (bytes[p] - '0');
            p++;
        }
        digitsEnd = p;
        return m;
    }

    private static boolean isDigit(int c) {
        return c >= '0' && c <= '9';
    }

    /** A string, a number, true, false or null: read past it. */
    private boolean skipScalar() {
        if (pos >= b.length) {
            return false;
        }
        return switch (b[pos]) {
            case '"' -> string();
            case 't' -> literal("true");
            case 'f' -> literal("false");
            case 'n' -> literal("null");
            default -> number();
        };
    }

    /**
     * A string of printable ASCII without escapes and at most {@link #MAX_STRING_BYTES} long; its
     * content is b[strStart, strEnd).
     */
    private boolean string() {
        if (!take('"')) {
            return false;
        }
        int start = pos;
        byte[] bytes = b;
        int end = Math.min(bytes.length, start + MAX_STRING_BYTES + 1);
        for (int i = start; i < end; i++) {
            byte c = bytes[i];
            if (c == '"') {
                strStart = start;
                strEnd = i;
                pos = i + 1;
                return true;
            }
            if (c < 0x20 || c == '\\') { // control characters, and every byte above 0x7F
                return false;
            }
        }
        return false;
    }

    private boolean literal(String word) {
        int n = word.length();
        if (pos + n > b.length) {
            return false;
        }
        for (int i = 0; i < n; i++) {
            if (b[pos + i] != word.charAt(i)) {
                return false;
            }
        }
        pos += n;
        return true;
    }

    /** After a member's value: whitespace, then a comma (and a next name) or a closing brace. */
    private boolean endOfMember() {
        skipWhitespace();
        if (take('}')) {
            return true;
        }
        if (!take(',')) {
            return false;
        }
        skipWhitespace();
        return at('"');
    }

    private boolean colon() {
        skipWhitespace();
        if (!take(':')) {
            return false;
        }
        skipWhitespace();
        return pos < b.length;
    }

    private int feature(int start, int end) {
        int mask = slots.length - 1;
        for (int slot = hash(b, start, end) & mask; slots[slot] != 0; slot = (slot + 1) & mask) {
            if (is(start, end, names[slots[slot] - 1])) {
                return slots[slot] - 1;
            }
        }
        return -1;
    }

    /** Which of {@link #CONTRACT_FIELDS} b[start, end) names, or -1 for none. */
    private int contractField(int start, int end) {
        for (int i = 0; i < CONTRACT_FIELDS.length; i++) {
            if (is(start, end, CONTRACT_FIELDS[i])) {
                return i;
            }
        }
        return -1;
    }

    /** Whether b[start, end) holds exactly {@code name}'s bytes. */
    private boolean is(int start, int end, byte[] name) {
        if (end - start != name.length) {
            return false;
        }
        byte[] bytes = b;
        for (int i = 0; i < name.length; i++) {
            if (bytes[start + i] != name[i]) {
                return false;
            }
        }
        return true;
    }

    private static int hash(byte[] bytes, int start, int end) {
        int h = 0;
        for (int i = start; i < end; i++) {
            h = 31 * h + bytes[i];
        }
        return h ^ (h >>> 16);
    }

    private void skipWhitespace() {
        byte[] bytes = b;
        int p = pos;
        while (p < bytes.length) {
            byte c = bytes[p];
            if (c != ' ' && c != '\n' && c != '\r' && c != '\t') {
                break;
            }
            p++;
        }
        pos = p;
    }

    private boolean at(char c) {
        return pos < b.length && b[pos] == c;
    }

    private boolean take(char c) {
        if (at(c)) {
            pos++;
            return true;
        }
        return false;
    }

    private static byte[] ascii(String s) {
        return s.getBytes(StandardCharsets.US_ASCII);
    }
}
