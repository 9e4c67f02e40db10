-- normalise e-mail addresses
UPDATE users SET email = lower(email) WHERE email <> lower(email);
