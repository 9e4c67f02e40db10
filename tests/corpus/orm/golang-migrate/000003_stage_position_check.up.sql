ALTER TABLE stages
    ADD CONSTRAINT stages_position_nonnegative CHECK (position >= 0);
